package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tacagent/tacagent/tacplus"
)

// Login runs one authentication for one caller. It returns nil only when the server said PASS, and it
// must return by itself: every client bounds its own wait (the agent's server timeout, a socket deadline).
type Login func(ctx context.Context) error

// Client is one way of logging in that a run measures.
type Client interface {
	// Caller prepares what caller i uses; work done here (tacquito's client opens its connection) happens
	// before the clock starts. A caller that cannot be prepared counts one error of its kind and does not run.
	Caller(i int) (Login, error)
	// Close releases everything the client opened.
	Close() error
}

// Scheduled is a failure event to inject during a run, At after its start.
type Scheduled struct {
	At   time.Duration
	Name string
	Do   func() error
}

// Event is a failure event as it happened.
type Event struct {
	At   time.Duration `json:"-"`
	AtS  float64       `json:"at_s"` // At in seconds
	Name string        `json:"name"`
	Err  string        `json:"error,omitempty"`
}

// Options bound one run. Count, when positive, wins over Duration.
type Options struct {
	Callers  int
	Duration time.Duration
	Count    int64
	Events   []Scheduled
	// Progress, when set, is incremented once per finished login (for a progress bar).
	Progress *atomic.Int64
}

// Percentiles are latencies in microseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Result is what one run measured.
type Result struct {
	Mode     string           `json:"mode"`
	Callers  int              `json:"callers"`
	Agents   int              `json:"agents,omitempty"` // fleet modes: agents sharing the callers
	Requests int64            `json:"requests"`         // logins finished inside the run (warm-up excluded)
	OK       int64            `json:"ok"`               // ... that passed
	Errors   map[string]int64 `json:"errors"`           // the others, by error class
	Seconds  float64          `json:"seconds"`
	// Throughput counts logins that passed, per second.
	Throughput float64 `json:"auths_per_s"`
	// Latency covers the logins that passed (failed ones are in the plot).
	Latency Percentiles `json:"latency_us"`
	// CPU is getrusage(RUSAGE_SELF) over the run: everything this process did, divided by Requests.
	CPUUser      float64 `json:"cpu_user_s"`
	CPUSys       float64 `json:"cpu_sys_s"`
	CPUPerAuthUS float64 `json:"cpu_us_per_auth"`
	// DaemonCPUPerAuthUS is a running daemon's CPU per login (/proc/PID/stat, 10 ms ticks), for the local
	// API of a daemon in another process (--socket); its time is not in CPUPerAuthUS.
	DaemonCPUPerAuthUS float64 `json:"daemon_cpu_us_per_auth,omitempty"`
	DaemonPID          int     `json:"daemon_pid,omitempty"`
	WarmupError        string  `json:"warmup_error,omitempty"`
	ServerAccepts      *int64  `json:"server_accepts,omitempty"` // connections the servers accepted for this mode (warm-up included)
	// ConnsPer1000 is ServerAccepts per 1,000 logins (warm-up included).
	ConnsPer1000 *float64 `json:"server_conns_per_1000_logins,omitempty"`
	// Ratios to the tacquito client's run of the same report, when there is one.
	ThroughputVsTacquito float64 `json:"throughput_vs_tacquito,omitempty"`
	CPUVsTacquito        float64 `json:"cpu_vs_tacquito,omitempty"`
	Events               []Event `json:"events,omitempty"`

	samples []sample
	kinds   []string // kind index -> name; 0 is "ok"
	elapsed time.Duration
}

// sample is one finished login: when it started (since the run's start), how long it took, how it ended.
type sample struct {
	at, lat time.Duration
	kind    uint16
}

// kindTable numbers error kinds across callers.
type kindTable struct {
	mu    sync.Mutex
	names []string
	index map[string]uint16
}

func newKindTable() *kindTable {
	return &kindTable{names: []string{"ok"}, index: map[string]uint16{"ok": 0}}
}

func (k *kindTable) id(name string) uint16 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if i, ok := k.index[name]; ok {
		return i
	}
	if len(k.names) >= math.MaxUint16 {
		return 0 // unreachable: kinds are a closed set
	}
	i := uint16(len(k.names))
	k.names = append(k.names, name)
	k.index[name] = i
	return i
}

// Run drives logins through c from opts.Callers goroutines until opts.Count logins finished or
// opts.Duration passed (a login under way then is let finish), or ctx ends. Warm-up (one login before the
// clock, so that connections are open) is the caller's business.
func Run(ctx context.Context, mode string, c Client, opts Options) *Result {
	if opts.Callers <= 0 {
		opts.Callers = 1
	}
	res := &Result{Mode: mode, Callers: opts.Callers, Errors: map[string]int64{}}
	kinds := newKindTable()
	logins := make([]Login, opts.Callers)
	for i := range logins {
		l, err := c.Caller(i)
		if err != nil {
			res.Errors[KindOf(err)]++
			continue
		}
		logins[i] = l
	}

	var stop atomic.Bool
	var next atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	perCaller := make([][]sample, opts.Callers)
	var wg sync.WaitGroup
	ru0 := rusage()
	start := time.Now()
	if opts.Count <= 0 {
		t := time.AfterFunc(opts.Duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	events := make(chan Event, len(opts.Events))
	var ewg sync.WaitGroup
	for _, ev := range opts.Events {
		ewg.Add(1)
		go func() {
			defer ewg.Done()
			t := time.NewTimer(ev.At)
			defer t.Stop()
			select {
			case <-t.C:
			case <-runCtx.Done():
				return
			}
			e := Event{At: time.Since(start), Name: ev.Name}
			if err := ev.Do(); err != nil {
				e.Err = err.Error()
			}
			events <- e
		}()
	}
	for i, login := range logins {
		if login == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]sample, 0, 1024)
			for !stop.Load() && runCtx.Err() == nil {
				if opts.Count > 0 && next.Add(1) > opts.Count {
					break
				}
				t0 := time.Now()
				err := login(runCtx)
				s := sample{at: t0.Sub(start), lat: time.Since(t0)}
				if err != nil {
					s.kind = kinds.id(KindOf(err))
				}
				buf = append(buf, s)
				if opts.Progress != nil {
					opts.Progress.Add(1)
				}
			}
			perCaller[i] = buf
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	ru1 := rusage()
	cancel() // events not yet due are not injected
	ewg.Wait()
	close(events)
	for e := range events {
		res.Events = append(res.Events, e)
	}
	slices.SortFunc(res.Events, func(a, b Event) int { return int(a.At - b.At) })
	for i := range res.Events {
		res.Events[i].AtS = res.Events[i].At.Seconds()
	}

	res.kinds = kinds.names
	n := 0
	for _, s := range perCaller {
		n += len(s)
	}
	res.samples = make([]sample, 0, n)
	for _, s := range perCaller {
		res.samples = append(res.samples, s...)
	}
	slices.SortFunc(res.samples, func(a, b sample) int { return int(a.at - b.at) })
	lats := make([]time.Duration, 0, n)
	for _, s := range res.samples {
		if s.kind == 0 {
			lats = append(lats, s.lat)
		} else {
			res.Errors[res.kinds[s.kind]]++
		}
	}
	res.Requests = int64(n)
	res.OK = int64(len(lats))
	res.Seconds = res.elapsed.Seconds()
	if res.Seconds > 0 {
		res.Throughput = float64(res.OK) / res.Seconds
	}
	res.Latency = percentiles(lats)
	res.CPUUser = ru1.user - ru0.user
	res.CPUSys = ru1.sys - ru0.sys
	if res.Requests > 0 {
		res.CPUPerAuthUS = (res.CPUUser + res.CPUSys) * 1e6 / float64(res.Requests)
	}
	return res
}

// percentiles sorts lats and returns the nearest-rank p50, p90, p99 and the maximum, in microseconds.
func percentiles(lats []time.Duration) Percentiles {
	if len(lats) == 0 {
		return Percentiles{}
	}
	slices.Sort(lats)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lats)))) - 1
		i = max(0, min(i, len(lats)-1))
		return us(lats[i])
	}
	return Percentiles{P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: us(lats[len(lats)-1])}
}

func us(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }

type cpuTimes struct{ user, sys float64 }

// rusage reads this process's user and system CPU time.
func rusage() cpuTimes {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}
	}
	tv := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return cpuTimes{user: tv(ru.Utime), sys: tv(ru.Stime)}
}

// LoadAvg reads the 1, 5 and 15 minute load averages; zeros when /proc is not there.
func LoadAvg() [3]float64 {
	var la [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return la
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		la[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return la
}

// Kinds of failures that are not in the agent's error taxonomy (tacquito's client, the local API).
const (
	KindDecode  = "decode"  // a reply that could not be decoded (tacquito's client: often a wrong key)
	KindNetwork = "network" // a socket error outside the taxonomy
	KindUnknown = "unknown"
)

// KindOf names err's class for the error table: the taxonomy's class names (tacplus.ClassName), the local
// API's error code when it has no class, else a few kinds of our own.
func KindOf(err error) string {
	if err == nil {
		return "ok"
	}
	if n := tacplus.ClassName(err); n != "unknown" {
		return n
	}
	var ke interface{ BenchKind() string }
	if errors.As(err, &ke) {
		return ke.BenchKind()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "aborted"
	}
	return KindUnknown
}

// kindError is an error that names its kind.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string     { return fmt.Sprintf("%s: %v", e.kind, e.err) }
func (e *kindError) Unwrap() error     { return e.err }
func (e *kindError) BenchKind() string { return e.kind }

func withKind(kind string, err error) error { return &kindError{kind: kind, err: err} }
