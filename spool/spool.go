package spool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults of Config.
const (
	DefaultPath            = agentconfig.DefaultSpoolPath
	DefaultMaxRecords      = agentconfig.DefaultSpoolMaxRecords
	DefaultMaxBytes        = agentconfig.DefaultSpoolMaxBytes
	DefaultLockTimeout     = time.Second
	DefaultMaxBatch        = 4096
	DefaultSenders         = 256
	DefaultSendTimeout     = 30 * time.Second
	DefaultRetryInitial    = agentconfig.DefaultSpoolRetryInitial
	DefaultRetryMax        = agentconfig.DefaultSpoolRetryMax
	DefaultDeadLetterAfter = agentconfig.DefaultSpoolDeadLetterAfter
	DefaultMaxDeadLetters  = 10000
)

// Errors of the package. Each is also of a class of the taxonomy (errors.Is with tacplus.ErrAborted,
// ErrConfig...), so the local API maps it to a stable code.
var (
	// ErrClosed: the spool is closing or closed; the record was not accepted.
	ErrClosed = &tacplus.Error{Class: tacplus.ErrAborted, Msg: "spool: closed"}
	// ErrLocked: another process holds the spool file (a second daemon on the same path).
	ErrLocked = errors.New("spool: the file is locked by another process")
	// ErrDroppedAtOnce: the cap is smaller than one commit's records; this one was dropped before it was
	// acknowledged.
	ErrDroppedAtOnce = &tacplus.Error{Class: tacplus.ErrAborted, Msg: "spool: full, the record was dropped at once (the cap is smaller than one commit)"}
)

// SendFunc delivers one record; nil means a server answered SUCCESS. The error's class decides what
// follows (see Spool): tacplus.ErrServerError retries this record's task with backoff; anything else but
// a refusal of the agent to send (ErrAborted: the agent closing or reloading) is an outage, which pauses
// all delivery with backoff. It must honour ctx.
type SendFunc func(ctx context.Context, r *Record) (Delivery, error)

// Delivery names the server that took a record.
type Delivery struct {
	Server    string
	SessionID uint32
	ServerMsg string
}

// Config is the spool's configuration. Zero values take the defaults.
type Config struct {
	// Path of the bbolt file; its directory is created (0700) when missing.
	Path string
	// MaxRecords and MaxBytes cap the records waiting (bytes: their encoded size). Past either, the
	// oldest records are dropped, counted and logged. Negative means no cap of that kind.
	MaxRecords int
	MaxBytes   int64
	// LockTimeout bounds the wait for the file's lock: a second daemon on the same file gets ErrLocked
	// instead of hanging.
	LockTimeout time.Duration
	// MaxBatch bounds the records of one commit.
	MaxBatch int
	// Senders bounds the records being delivered at once (each attempt runs on a goroutine of its own).
	Senders int
	// SendTimeout bounds one delivery attempt.
	SendTimeout time.Duration
	// RetryInitial and RetryMax bound the doubling delay after an ERROR (per task) or an outage (all).
	RetryInitial time.Duration
	RetryMax     time.Duration
	// DeadLetterAfter: a record answered ERROR this many times, with other records taken by a server
	// in between (so the servers work and refuse this one), goes to the dead-letter bucket.
	DeadLetterAfter int
	// MaxDeadLetters caps the dead-letter bucket; past it the oldest dead letters are dropped (logged).
	MaxDeadLetters int

	Send    SendFunc
	Log     zerolog.Logger
	Metrics *metrics.Metrics // nil: no metrics
	Now     func() time.Time // nil: time.Now
}

func (c *Config) setDefaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Senders <= 0 {
		c.Senders = DefaultSenders
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.RetryMax < c.RetryInitial {
		c.RetryMax = c.RetryInitial
	}
	if c.DeadLetterAfter <= 0 {
		c.DeadLetterAfter = DefaultDeadLetterAfter
	}
	if c.MaxDeadLetters <= 0 {
		c.MaxDeadLetters = DefaultMaxDeadLetters
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Outcome is what became of a record's first delivery attempt, as far as its caller waits for it.
type Outcome struct {
	Seq uint64
	// Delivered: a server answered SUCCESS; Delivery names it.
	Delivered bool
	Delivery
	// Err says why the record is still in the spool (nil when delivered): the attempt's error, or the
	// outage or backoff that holds it back.
	Err error
}

// Ticket is a durable record's receipt. Wait returns the outcome of its first delivery attempt.
type Ticket struct {
	Seq uint64
	ch  chan Outcome // buffered 1: the owner never blocks on it
}

// Wait returns the outcome of the record's first delivery attempt, or ok false when ctx ended first (the
// record stays in the spool either way).
func (t *Ticket) Wait(ctx context.Context) (Outcome, bool) {
	select {
	case o := <-t.ch:
		return o, true
	case <-ctx.Done():
		return Outcome{Seq: t.Seq, Err: ctx.Err()}, false
	}
}

// Stats is the spool's state for status and the metrics.
type Stats struct {
	Path        string
	Depth       int       // records waiting (in flight included)
	Bytes       int64     // their encoded size
	Oldest      time.Time // acceptance time of the oldest waiting record; zero when empty
	InFlight    int       // records being delivered
	DeadLetters int       // records in the dead-letter bucket
	Outage      bool      // delivery paused after a failure to reach any server
}

// Spool is an open spool. Its methods are safe for concurrent use.
type Spool struct {
	cfg Config
	log zerolog.Logger
	db  *bolt.DB
	m   *metrics.Metrics

	appendCh chan *appendReq
	resCh    chan result
	stopping chan struct{} // closed by Close: no new appends, no new deliveries
	done     chan struct{} // closed when the owner goroutine has exited and the file is closed
	ctx      context.Context
	cancel   context.CancelFunc
	senders  sync.WaitGroup // delivery attempts out
	stopOnce sync.Once

	// Published by the owner after each step, read by Stats.
	depth, bytes, oldest, inflight, dead atomic.Int64
	outage                               atomic.Bool

	st *state // owned by the run goroutine
}

type appendReq struct {
	rec    *Record
	val    []byte
	done   chan error // buffered 1
	ticket *Ticket
}

// Validate reports whether the agent would send req: a record it refuses would only reach the
// dead-letter bucket, so it is refused before it is accepted.
func Validate(req *messages.AcctRequest) error {
	_, err := fsm.NewAcct(fsm.AcctConfig{SessionID: 1, Flags: req.Flags, Method: req.Method, PrivLvl: req.PrivLvl,
		Type: req.Type, Service: req.Service, User: req.User, Port: req.Port, RemAddr: req.RemAddr, Args: req.Args})
	return err
}

// Append makes a record durable: it returns once the record is committed and fsynced, with the
// record's ticket. A record the agent would refuse (Validate) is refused here, with class
// tacplus.ErrConfig. When ctx ends before the commit, the record may or may not be in the spool (the
// caller was not acknowledged; at least once).
func (s *Spool) Append(ctx context.Context, group string, req messages.AcctRequest) (*Ticket, error) {
	p, err := s.Enqueue(ctx, group, req)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// Pending is a record queued for the spool's next commit, not yet durable.
type Pending struct {
	s *Spool
	a *appendReq
}

// Enqueue queues a record for the spool's next group commit and returns without waiting for it: the
// record is ordered (a record of the same task queued later is delivered after it) but not durable until
// Pending.Wait returns; a crash before that commit loses it. Refusals are Append's.
func (s *Spool) Enqueue(ctx context.Context, group string, req messages.AcctRequest) (*Pending, error) {
	if err := Validate(&req); err != nil {
		return nil, err
	}
	rec := &Record{Accepted: s.cfg.Now(), Group: group, Req: req}
	val, err := encodeRecord(nil, rec)
	if err != nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "spool: cannot store the record", Err: err}
	}
	a := &appendReq{rec: rec, val: val, done: make(chan error, 1), ticket: &Ticket{ch: make(chan Outcome, 1)}}
	select {
	case <-s.stopping:
		return nil, ErrClosed
	default:
	}
	select {
	case s.appendCh <- a:
	case <-s.stopping:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "spool: the caller gave up before the record was queued", Err: ctx.Err()}
	}
	return &Pending{s: s, a: a}, nil
}

// Wait returns once the queued record is committed and fsynced, with its ticket (Append's answer).
func (p *Pending) Wait(ctx context.Context) (*Ticket, error) {
	s, a := p.s, p.a
	select {
	case err := <-a.done:
		return a.answer(err)
	case <-s.done:
		select {
		case err := <-a.done:
			return a.answer(err)
		default:
			return nil, ErrClosed
		}
	case <-ctx.Done():
		return nil, &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "spool: the caller gave up before the commit (the record may still be kept)", Err: ctx.Err()}
	}
}

func (a *appendReq) answer(err error) (*Ticket, error) {
	if err != nil {
		return nil, err
	}
	return a.ticket, nil
}

// Stats returns the spool's current state.
func (s *Spool) Stats() Stats {
	st := Stats{Path: s.cfg.Path, Depth: int(s.depth.Load()), Bytes: s.bytes.Load(), InFlight: int(s.inflight.Load()),
		DeadLetters: int(s.dead.Load()), Outage: s.outage.Load()}
	if o := s.oldest.Load(); o != 0 {
		st.Oldest = time.Unix(0, o)
	}
	return st
}

// Path returns the spool file's path.
func (s *Spool) Path() string { return s.cfg.Path }

// Close stops accepting records, lets the deliveries in flight finish until ctx ends (then cancels
// them: they stay in the spool), commits what is pending and closes the file. Records not delivered are
// kept for the next Open.
func (s *Spool) Close(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopping) })
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
	}
	s.cancel()
	return nil
}
