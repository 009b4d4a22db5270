package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadline is how long a condition may take on a loaded 2-core machine running other builds.
const deadline = 30 * time.Second

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.EventuallyEvery(t, deadline, 2*time.Millisecond, what, cond)
}

type syncBuffer = testkit.SyncBuffer

// server is a scripted accounting server: decide says what each attempt gets (nil: SUCCESS).
type server struct {
	mu        sync.Mutex
	decide    func(r *Record, attempt int) error
	got       []*Record      // every delivery (SUCCESS), in arrival order
	attempts  map[uint64]int // attempts per seq
	perTask   map[string]int // attempts in flight per task
	overlap   bool           // two attempts of one task were in flight at once
	hold      chan struct{}  // when set, each attempt waits for it (or ctx) after it was recorded
	delivered map[uint64]int
}

func newServer(decide func(r *Record, attempt int) error) *server {
	return &server{decide: decide, attempts: map[uint64]int{}, perTask: map[string]int{}, delivered: map[uint64]int{}}
}

var errDown = &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "test: every server is down"}

func (s *server) send(ctx context.Context, r *Record) (Delivery, error) {
	s.mu.Lock()
	task := r.Task()
	s.perTask[task]++
	if s.perTask[task] > 1 {
		s.overlap = true
	}
	s.attempts[r.Seq]++
	n := s.attempts[r.Seq]
	decide, hold := s.decide, s.hold
	s.mu.Unlock()
	err := decide(r, n)
	if err == nil {
		s.mu.Lock()
		s.got = append(s.got, r)
		s.delivered[r.Seq]++
		s.mu.Unlock()
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			err = &tacplus.Error{Class: tacplus.ErrAborted, Msg: "test: cancelled", Err: ctx.Err()}
		}
	}
	s.mu.Lock()
	s.perTask[task]--
	s.mu.Unlock()
	return Delivery{Server: "test:49", SessionID: uint32(r.Seq)}, err
}

func (s *server) set(decide func(r *Record, attempt int) error) {
	s.mu.Lock()
	s.decide = decide
	s.mu.Unlock()
}

func (s *server) deliveries() []*Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Record(nil), s.got...)
}

func up(*Record, int) error   { return nil }
func down(*Record, int) error { return errDown }

type fixture struct {
	t   *testing.T
	cfg Config
	srv *server
	log *syncBuffer
	m   *metrics.Metrics
	sp  *Spool
}

func newFixture(t *testing.T, decide func(*Record, int) error, tweak func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, srv: newServer(decide), log: &syncBuffer{}}
	var err error
	if f.m, err = metrics.New(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	f.cfg = Config{Path: filepath.Join(t.TempDir(), "spool.db"), RetryInitial: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Log: zerolog.New(f.log), Metrics: f.m, Send: f.srv.send}
	if tweak != nil {
		tweak(&f.cfg)
	}
	f.open()
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	sp, err := Open(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.sp = sp
	f.t.Cleanup(func() { f.close() })
}

func (f *fixture) close() {
	if f.sp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := f.sp.Close(ctx); err != nil {
		f.t.Error(err)
	}
	f.sp = nil
}

func record(task string, flags tacplus.AcctFlag, n int) messages.AcctRequest {
	return messages.AcctRequest{Flags: flags, Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
		Service: tacplus.ServiceLogin, User: "alice", Port: "tty1", RemAddr: "192.0.2.7",
		Args: []string{"task_id=" + task, "service=shell", fmt.Sprintf("cmd=show run %d", n)}}
}

func (f *fixture) append(task string, flags tacplus.AcctFlag, n int) *Ticket {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	tk, err := f.sp.Append(ctx, "", record(task, flags, n))
	if err != nil {
		f.t.Fatal(err)
	}
	return tk
}

func (f *fixture) depth() int { return f.sp.Stats().Depth }

func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }
