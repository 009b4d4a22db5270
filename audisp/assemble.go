package audisp

import (
	"strings"
	"time"
)

// Defaults of the Assembler.
const (
	// DefaultEOETimeout ends an event that never got its EOE record: auditd's own end_of_event_timeout
	// (auditd.conf(5)) defaults to 2 s for the same reason (records can be lost, and user-space records
	// have no EOE).
	DefaultEOETimeout = 2 * time.Second
	// DefaultMaxPending bounds the events being assembled; past it, the oldest is ended early.
	DefaultMaxPending = 4096
	// DefaultMaxRecords bounds the records kept per event (an execve of a huge argument list spans many
	// EXECVE records); past it, records are dropped and the event is marked Truncated.
	DefaultMaxRecords = 512
)

// Event is the records of one audit event, in arrival order.
type Event struct {
	Node    string
	ID      EventID
	Records []Record
	// Complete is true when the event ended with its EOE record (or is a single user-space record, which
	// has none); false when it was ended by the timeout or the pending limit.
	Complete  bool
	Truncated bool
	first     time.Time
}

type eventKey struct {
	node string
	id   EventID
}

// Assembler groups records into events by event id. It reads no clock: Add and Flush take the time. It
// is not safe for concurrent use.
type Assembler struct {
	Timeout    time.Duration // default DefaultEOETimeout
	MaxPending int           // default DefaultMaxPending
	MaxRecords int           // default DefaultMaxRecords

	pending map[eventKey]*Event
	order   []eventKey // arrival order of pending events; entries of ended events are skipped
	head    int

	// Counters, read by the owner.
	LateEOE     uint64 // EOE for an event already ended by the timeout
	TimedOut    uint64 // events ended by the timeout
	Overflowed  uint64 // events ended early by MaxPending
	RecordsDrop uint64 // records dropped by MaxRecords
}

func (a *Assembler) init() {
	if a.pending == nil {
		a.pending = make(map[eventKey]*Event)
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultEOETimeout
	}
	if a.MaxPending <= 0 {
		a.MaxPending = DefaultMaxPending
	}
	if a.MaxRecords <= 0 {
		a.MaxRecords = DefaultMaxRecords
	}
}

// standalone reports whether records of this type are whole events by themselves: user-space messages
// (libaudit's audit_log_user_message: USER_*, CRED_*, ...) and the kernel's ANOM_* records are sent
// without EOE. LOGIN and CONFIG_CHANGE are not: the kernel follows them with the SYSCALL and EOE of the
// same event.
func standalone(typ string) bool {
	switch {
	case strings.HasPrefix(typ, "USER"), strings.HasPrefix(typ, "CRED_"), strings.HasPrefix(typ, "ANOM_"),
		strings.HasPrefix(typ, "DAEMON_"), strings.HasPrefix(typ, "SERVICE_"), strings.HasPrefix(typ, "SYSTEM_"),
		strings.HasPrefix(typ, "GRP_"), strings.HasPrefix(typ, "ADD_"), strings.HasPrefix(typ, "DEL_"):
		return true
	}
	return false
}

// Add takes one record; emit is called with every event that ends now.
func (a *Assembler) Add(r Record, now time.Time, emit func(*Event)) {
	a.init()
	k := eventKey{r.Node, r.ID}
	if r.Type == "EOE" {
		ev, ok := a.pending[k]
		if !ok {
			a.LateEOE++
			return
		}
		delete(a.pending, k)
		ev.Complete = true
		emit(ev)
		return
	}
	if standalone(r.Type) {
		if _, ok := a.pending[k]; !ok {
			emit(&Event{Node: r.Node, ID: r.ID, Records: []Record{r}, Complete: true, first: now})
			return
		}
	}
	ev, ok := a.pending[k]
	if !ok {
		for len(a.pending) >= a.MaxPending {
			a.Overflowed++
			a.popOldest(emit)
		}
		ev = &Event{Node: r.Node, ID: r.ID, first: now}
		a.pending[k] = ev
		a.order = append(a.order, k)
		if len(a.order) > 4*a.MaxPending+1024 {
			a.compact()
		}
	}
	if len(ev.Records) >= a.MaxRecords {
		ev.Truncated = true
		a.RecordsDrop++
		return
	}
	ev.Records = append(ev.Records, r)
}

// popOldest ends the oldest pending event.
func (a *Assembler) popOldest(emit func(*Event)) {
	for a.head < len(a.order) {
		k := a.order[a.head]
		a.head++
		if ev, ok := a.pending[k]; ok {
			delete(a.pending, k)
			emit(ev)
			break
		}
	}
	a.compact()
}

// Flush ends every event that has waited Timeout or longer for its EOE.
func (a *Assembler) Flush(now time.Time, emit func(*Event)) {
	a.init()
	for a.head < len(a.order) {
		k := a.order[a.head]
		ev, ok := a.pending[k]
		if ok && now.Sub(ev.first) < a.Timeout {
			break
		}
		a.head++
		if ok {
			delete(a.pending, k)
			a.TimedOut++
			emit(ev)
		}
	}
	a.compact()
}

// FlushAll ends every pending event (at the end of the input).
func (a *Assembler) FlushAll(emit func(*Event)) {
	a.init()
	for a.head < len(a.order) {
		k := a.order[a.head]
		a.head++
		if ev, ok := a.pending[k]; ok {
			delete(a.pending, k)
			emit(ev)
		}
	}
	a.compact()
}

// Pending returns the number of events being assembled.
func (a *Assembler) Pending() int { return len(a.pending) }

// compact drops the consumed head of order once it is most of the slice, and skipped (ended) entries,
// so order stays O(pending).
func (a *Assembler) compact() {
	if a.head == len(a.order) {
		a.order, a.head = a.order[:0], 0
		return
	}
	if (a.head > 1024 && a.head*2 > len(a.order)) || len(a.order) > 4*a.MaxPending+1024 {
		live := a.order[:0]
		for _, k := range a.order[a.head:] {
			if _, ok := a.pending[k]; ok {
				live = append(live, k)
			}
		}
		a.order, a.head = live, 0
	}
}
