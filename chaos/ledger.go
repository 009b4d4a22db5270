package chaos

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Outcome classes besides the error taxonomy's names (tacplus.ClassName) and the local API's codes.
const (
	// ClassOK is the answer the request expected: PASS for the right password and FAIL for a wrong one,
	// a permit or a denial as the rules say, an acknowledged accounting record.
	ClassOK = "ok"
	// ClassWrong is an answer that contradicts the expectation: a PASS for a wrong password, a FAIL for the
	// right one, a permit for a denied command. Never allowed: it means a reply reached the wrong session.
	ClassWrong = "wrong"
	// ClassHung is a request that did not return within its deadline plus the grace.
	ClassHung = "hung"
	// ClassGaveUp is a request whose caller gave up (a short deadline or a cancellation, TestCallersGiveUp)
	// and that ended with the matching context error.
	ClassGaveUp = "gave_up"
)

// maxSamples bounds the error texts kept per class for reports.
const maxSamples = 3

// Op is one request as its caller saw it.
type Op struct {
	Frontend string // "goapi" or "localapi"
	Kind     string // what was asked, such as "pap" or "acct"
	Start    time.Time
	Latency  time.Duration
	Class    string // ClassOK, ClassWrong, ClassHung or an error class / API code
	Err      string // the error text, for reports
	Server   string // the server that answered, by name; "" when none did
	TaskID   string // accounting records: the unique task_id
	// GaveUp is when the caller gave up (its short deadline passed, or it cancelled) before the call
	// returned; zero when it waited for the answer. From then on no server may receive the request.
	GaveUp time.Time
	// Cancelled: the give-up was a cancellation (not a deadline the callee knew in advance).
	Cancelled bool
}

// Key identifies a count in Counts.
type Key struct{ Frontend, Kind, Class string }

// Counts is a snapshot of outcome counts.
type Counts map[Key]int

// Sub returns c minus earlier, for the outcomes of a window.
func (c Counts) Sub(earlier Counts) Counts {
	out := Counts{}
	for k, v := range c {
		if d := v - earlier[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Total sums the counts whose key matches every non-empty field of filter.
func (c Counts) Total(filter Key) int {
	n := 0
	for k, v := range c {
		if (filter.Frontend == "" || filter.Frontend == k.Frontend) && (filter.Kind == "" || filter.Kind == k.Kind) &&
			(filter.Class == "" || filter.Class == k.Class) {
			n += v
		}
	}
	return n
}

// Classes sums the counts by class, over the keys that match filter.
func (c Counts) Classes(filter Key) map[string]int {
	out := map[string]int{}
	for k, v := range c {
		if (filter.Frontend == "" || filter.Frontend == k.Frontend) && (filter.Kind == "" || filter.Kind == k.Kind) {
			out[k.Class] += v
		}
	}
	return out
}

// opSample is what the ledger keeps of every request for windowed questions.
type opSample struct {
	start    time.Time
	lat      time.Duration
	frontend string
	kind     string
	class    string
	server   string
	ok       bool
	hung     bool
}

type acctEntry struct {
	acked, failed, hung bool
	server              string
	class               string
}

// Ledger records what every caller saw. It is safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	counts  Counts
	ops     []opSample
	served  map[string]int
	samples map[string][]string
	acct    map[string]*acctEntry
	hung    []Op
	wrong   []Op
	gaveUp  map[string]time.Time // task_id -> when its caller gave up
	cancels map[string]bool      // task_id -> the give-up was a cancellation
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{counts: Counts{}, samples: map[string][]string{}, acct: map[string]*acctEntry{}, served: map[string]int{},
		gaveUp: map[string]time.Time{}, cancels: map[string]bool{}}
}

// Record adds one finished (or hung) request. An accounting record carries a TaskID unique in the ledger.
func (l *Ledger) Record(op Op) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[Key{op.Frontend, op.Kind, op.Class}]++
	l.ops = append(l.ops, opSample{start: op.Start, lat: op.Latency, frontend: op.Frontend, kind: op.Kind,
		class: op.Class, server: op.Server, ok: op.Class == ClassOK, hung: op.Class == ClassHung})
	if op.Server != "" {
		l.served[op.Frontend+"/"+op.Server]++
	}
	if op.Class != ClassOK && op.Err != "" && len(l.samples[op.Class]) < maxSamples {
		l.samples[op.Class] = append(l.samples[op.Class], fmt.Sprintf("%s %s: %s", op.Frontend, op.Kind, op.Err))
	}
	switch op.Class {
	case ClassHung:
		l.hung = append(l.hung, op)
	case ClassWrong:
		l.wrong = append(l.wrong, op)
	}
	if op.TaskID == "" {
		return
	}
	if !op.GaveUp.IsZero() {
		l.gaveUp[op.TaskID] = op.GaveUp
		if op.Cancelled {
			l.cancels[op.TaskID] = true
		}
	}
	e := l.acct[op.TaskID]
	if e == nil {
		e = &acctEntry{}
		l.acct[op.TaskID] = e
	}
	switch op.Class {
	case ClassOK:
		e.acked, e.server = true, op.Server
	case ClassHung:
		e.hung = true
	default:
		e.failed, e.class = true, op.Class
	}
}

// Counts returns a snapshot of the outcome counts.
func (l *Ledger) Counts() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(Counts, len(l.counts))
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}

// Samples returns up to maxSamples error texts for each class that is not ClassOK.
func (l *Ledger) Samples() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string][]string, len(l.samples))
	for k, v := range l.samples {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Hung returns the requests that hung.
func (l *Ledger) Hung() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Op(nil), l.hung...)
}

// Wrong returns the requests whose answer contradicted the expectation.
func (l *Ledger) Wrong() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Op(nil), l.wrong...)
}

// Latencies returns the latencies of every request that returned, sorted.
func (l *Ledger) Latencies() []time.Duration {
	return l.LatenciesBetween(time.Time{}, time.Time{})
}

// LatenciesBetween returns the sorted latencies of the requests that returned and started in [from, to);
// a zero bound is open.
func (l *Ledger) LatenciesBetween(from, to time.Time) []time.Duration {
	w := l.Window(from, to, "")
	return w.Latencies
}

// Window describes the requests that started in a time window.
type Window struct {
	Total, NotOK, Hung int
	Latencies          []time.Duration // of those that returned, sorted
	// FirstOK is when the first request of the window that got its expected answer returned (zero if none).
	FirstOK time.Time
}

// Window returns the requests of frontend ("" for all) that started in [from, to); a zero bound is open.
func (l *Ledger) Window(from, to time.Time, frontend string) Window {
	var w Window
	l.mu.Lock()
	for _, s := range l.ops {
		if (!from.IsZero() && s.start.Before(from)) || (!to.IsZero() && !s.start.Before(to)) ||
			(frontend != "" && s.frontend != frontend) {
			continue
		}
		w.Total++
		switch {
		case s.hung:
			w.Hung++
			continue
		case !s.ok:
			w.NotOK++
		default:
			if end := s.start.Add(s.lat); w.FirstOK.IsZero() || end.Before(w.FirstOK) {
				w.FirstOK = end
			}
		}
		w.Latencies = append(w.Latencies, s.lat)
	}
	l.mu.Unlock()
	sort.Slice(w.Latencies, func(i, j int) bool { return w.Latencies[i] < w.Latencies[j] })
	return w
}

// ServedBy counts the requests of frontend that the named server answered (whatever the answer).
func (l *Ledger) ServedBy(frontend, server string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served[frontend+"/"+server]
}

// AcctReport reconciles the accounting records callers sent with what the servers' sinks hold.
type AcctReport struct {
	Sent   int // distinct task_ids sent
	Acked  int // acknowledged to their caller
	Failed int // reported to their caller as failed
	Hung   int // no answer in time (also counted by the hung invariant)
	// Lost lists task_ids acknowledged to their caller and found in no sink: a record silently lost.
	Lost []string
	// Misrouted lists task_ids acknowledged as taken by one server and found only in other sinks.
	Misrouted []string
	// Duplicates counts extra copies: each copy past the first of an acknowledged record, and every copy
	// of a record its caller was told had failed (at-least-once delivery retried it, or the server took
	// it and its answer was lost).
	Duplicates int
	DupRepeats int // copies past the first of acknowledged records
	DupFailed  int // copies of records reported failed
	// Unknown counts sink records whose task_id this ledger never sent (another run's, or a bug).
	Unknown int
}

// Reconcile compares the ledger's accounting records with sinks: for each server name, the task_ids its
// sink holds, one entry per copy.
func (l *Ledger) Reconcile(sinks map[string][]string) AcctReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	copies := map[string]map[string]int{} // task_id -> server -> copies
	var r AcctReport
	for server, ids := range sinks {
		for _, id := range ids {
			if _, ok := l.acct[id]; !ok {
				r.Unknown++
				continue
			}
			if copies[id] == nil {
				copies[id] = map[string]int{}
			}
			copies[id][server]++
		}
	}
	ids := make([]string, 0, len(l.acct))
	for id := range l.acct {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := l.acct[id]
		r.Sent++
		n := 0
		for _, c := range copies[id] {
			n += c
		}
		switch {
		case e.acked:
			r.Acked++
			if n == 0 {
				r.Lost = append(r.Lost, id)
				continue
			}
			if e.server != "" && copies[id][e.server] == 0 {
				r.Misrouted = append(r.Misrouted, id)
			}
			r.DupRepeats += n - 1
		case e.hung:
			r.Hung++
		default:
			r.Failed++
			r.DupFailed += n
		}
	}
	r.Duplicates = r.DupRepeats + r.DupFailed
	return r
}

// Cancelled reports whether the caller of accounting record taskID gave up by cancelling.
func (l *Ledger) Cancelled(taskID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cancels[taskID]
}

// GaveUp returns, for each accounting record whose caller gave up before its call returned, when it did.
func (l *Ledger) GaveUp() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]time.Time, len(l.gaveUp))
	for k, v := range l.gaveUp {
		out[k] = v
	}
	return out
}

// Brief is what OpsBetween returns of a request.
type Brief struct {
	Frontend, Kind, Class string
	Server                string // the server that answered, "" when none did (or a FAIL through the local API)
	Start                 time.Time
	Latency               time.Duration
}

// OpsBetween returns the requests of the given kinds (every kind when none is named) that started in
// [from, to); a zero bound is open.
func (l *Ledger) OpsBetween(from, to time.Time, kinds ...string) []Brief {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Brief
	for _, s := range l.ops {
		if (!from.IsZero() && s.start.Before(from)) || (!to.IsZero() && !s.start.Before(to)) ||
			(len(kinds) > 0 && !slices.Contains(kinds, s.kind)) {
			continue
		}
		out = append(out, Brief{Frontend: s.frontend, Kind: s.kind, Class: s.class, Server: s.server, Start: s.start, Latency: s.lat})
	}
	return out
}
