package serverfsm

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

const (
	deadTime = 30 * time.Second
	holdDown = time.Hour
)

// The states a machine can reach, each built only through Step from a fresh machine (so the table cannot
// describe a state the machine never reaches). "now" is the time of the event applied to it.
type stateCase struct {
	name  string
	build func() *Machine
	now   time.Time
}

func fresh() *Machine {
	return New(Config{DeadTime: deadTime, HoldDown: holdDown, SingleConnect: true})
}

func states() []stateCase {
	alive := func() *Machine { return fresh() }
	dead := func() *Machine {
		m := fresh()
		m.Step(Failed{At: t0, Cause: "connect refused"})
		return m
	}
	probing := func() *Machine {
		m := dead()
		m.Step(ProbeDue{At: t0.Add(deadTime)})
		return m
	}
	agreed := func() *Machine {
		m := fresh()
		m.Step(Negotiated{At: t0, Agreed: true})
		return m
	}
	refused := func() *Machine {
		m := fresh()
		m.Step(Negotiated{At: t0, Agreed: false})
		return m
	}
	held := func() *Machine {
		// A desync dead-times the server as well; an answer revives it, the hold-down goes on.
		m := fresh()
		m.Step(Desynced{At: t0, Reason: "session"})
		m.Step(Answered{At: t0})
		return m
	}
	return []stateCase{
		{"alive", alive, t0.Add(time.Second)},
		{"alive/agreed", agreed, t0.Add(time.Second)},
		{"alive/refused", refused, t0.Add(time.Second)},
		{"alive/hold-down", held, t0.Add(time.Second)},
		{"alive/hold-down over", held, t0.Add(holdDown)},
		{"dead in dead-time", dead, t0.Add(time.Second)},
		{"dead, dead-time over", dead, t0.Add(deadTime)},
		{"probing", probing, t0.Add(deadTime + time.Second)},
	}
}

// The kinds of event; each is applied at the state's "now".
var events = []struct {
	name string
	ev   func(now time.Time) Event
}{
	{"Failed", func(n time.Time) Event { return Failed{At: n, Cause: "timeout"} }},
	{"Answered", func(n time.Time) Event { return Answered{At: n} }},
	{"ProbeDue", func(n time.Time) Event { return ProbeDue{At: n} }},
	{"ProbeFailed", func(n time.Time) Event { return ProbeFailed{At: n, Cause: "timeout"} }},
	{"Desynced", func(n time.Time) Event { return Desynced{At: n, Reason: "seq"} }},
	{"Negotiated agreed", func(n time.Time) Event { return Negotiated{At: n, Agreed: true} }},
	{"Negotiated refused", func(n time.Time) Event { return Negotiated{At: n, Agreed: false} }},
	{"ConnectionLost", func(n time.Time) Event { return ConnectionLost{At: n} }},
}

// row is the expected result: health after, effects (names, "; "-joined, "-" for none), the negotiation
// memory after, and whether a new request multiplexes right after the event.
type row struct {
	health Health
	fx     string
	neg    Negotiation
	mux    bool
}

// table[state][event]. Only a server failure (a desync is one: a protocol error) or a failed probe kills;
// only an answer revives; a probe is started only by ProbeDue on a dead server whose dead-time is over; a
// desync logs its hold-down once per hold-down, and its dead-time once per death.
var table = map[string]map[string]row{
	"alive": {
		"Failed":             {Dead, "LogDead; ArmProbe", Unknown, true},
		"Answered":           {Alive, "-", Unknown, true},
		"ProbeDue":           {Alive, "-", Unknown, true},
		"ProbeFailed":        {Alive, "-", Unknown, true},
		"Desynced":           {Dead, "LogHoldDown; LogDead; ArmProbe", Unknown, false},
		"Negotiated agreed":  {Alive, "-", Agreed, true},
		"Negotiated refused": {Alive, "-", Refused, false},
		"ConnectionLost":     {Alive, "-", Unknown, true},
	},
	"alive/agreed": {
		"Failed":             {Dead, "LogDead; ArmProbe", Unknown, true},
		"Answered":           {Alive, "-", Agreed, true},
		"ProbeDue":           {Alive, "-", Agreed, true},
		"ProbeFailed":        {Alive, "-", Agreed, true},
		"Desynced":           {Dead, "LogHoldDown; LogDead; ArmProbe", Unknown, false},
		"Negotiated agreed":  {Alive, "-", Agreed, true},
		"Negotiated refused": {Alive, "-", Refused, false},
		"ConnectionLost":     {Alive, "-", Unknown, true},
	},
	"alive/refused": {
		"Failed":             {Dead, "LogDead; ArmProbe", Unknown, true},
		"Answered":           {Alive, "-", Refused, false},
		"ProbeDue":           {Alive, "-", Refused, false},
		"ProbeFailed":        {Alive, "-", Refused, false},
		"Desynced":           {Dead, "LogHoldDown; LogDead; ArmProbe", Unknown, false},
		"Negotiated agreed":  {Alive, "-", Agreed, true},
		"Negotiated refused": {Alive, "-", Refused, false},
		"ConnectionLost":     {Alive, "-", Unknown, true},
	},
	"alive/hold-down": {
		"Failed":             {Dead, "LogDead; ArmProbe", Unknown, false},
		"Answered":           {Alive, "-", Unknown, false},
		"ProbeDue":           {Alive, "-", Unknown, false},
		"ProbeFailed":        {Alive, "-", Unknown, false},
		"Desynced":           {Dead, "LogDead; ArmProbe", Unknown, false},
		"Negotiated agreed":  {Alive, "-", Agreed, false},
		"Negotiated refused": {Alive, "-", Refused, false},
		"ConnectionLost":     {Alive, "-", Unknown, false},
	},
	"alive/hold-down over": {
		"Failed":             {Dead, "LogDead; ArmProbe", Unknown, true},
		"Answered":           {Alive, "-", Unknown, true},
		"ProbeDue":           {Alive, "-", Unknown, true},
		"ProbeFailed":        {Alive, "-", Unknown, true},
		"Desynced":           {Dead, "LogHoldDown; LogDead; ArmProbe", Unknown, false},
		"Negotiated agreed":  {Alive, "-", Agreed, true},
		"Negotiated refused": {Alive, "-", Refused, false},
		"ConnectionLost":     {Alive, "-", Unknown, true},
	},
	"dead in dead-time": {
		"Failed":             {Dead, "-", Unknown, true},
		"Answered":           {Alive, "LogAlive", Unknown, true},
		"ProbeDue":           {Dead, "-", Unknown, true},
		"ProbeFailed":        {Dead, "-", Unknown, true},
		"Desynced":           {Dead, "LogHoldDown", Unknown, false},
		"Negotiated agreed":  {Dead, "-", Agreed, true},
		"Negotiated refused": {Dead, "-", Refused, false},
		"ConnectionLost":     {Dead, "-", Unknown, true},
	},
	"dead, dead-time over": {
		"Failed":             {Dead, "ArmProbe", Unknown, true},
		"Answered":           {Alive, "LogAlive", Unknown, true},
		"ProbeDue":           {Probing, "StartProbe", Unknown, true},
		"ProbeFailed":        {Dead, "-", Unknown, true},
		"Desynced":           {Dead, "LogHoldDown; ArmProbe", Unknown, false},
		"Negotiated agreed":  {Dead, "-", Agreed, true},
		"Negotiated refused": {Dead, "-", Refused, false},
		"ConnectionLost":     {Dead, "-", Unknown, true},
	},
	"probing": {
		"Failed":             {Dead, "ArmProbe", Unknown, true},
		"Answered":           {Alive, "LogAlive", Unknown, true},
		"ProbeDue":           {Probing, "-", Unknown, true},
		"ProbeFailed":        {Dead, "ArmProbe", Unknown, true},
		"Desynced":           {Dead, "LogHoldDown; ArmProbe", Unknown, false},
		"Negotiated agreed":  {Probing, "-", Agreed, true},
		"Negotiated refused": {Probing, "-", Refused, false},
		"ConnectionLost":     {Probing, "-", Unknown, true},
	},
}

func fxNames(fx []Effect) string {
	if len(fx) == 0 {
		return "-"
	}
	var s []string
	for _, f := range fx {
		s = append(s, strings.TrimPrefix(fmt.Sprintf("%T", f), "serverfsm."))
	}
	return strings.Join(s, "; ")
}

// TestTable applies every event to every state and checks the row; a state or event missing from the table
// fails.
func TestTable(t *testing.T) {
	for _, st := range states() {
		rows, ok := table[st.name]
		if !ok {
			t.Errorf("state %q has no row in the table", st.name)
			continue
		}
		for _, ev := range events {
			want, ok := rows[ev.name]
			if !ok {
				t.Errorf("%s x %s: missing from the table", st.name, ev.name)
				continue
			}
			m := st.build()
			fx := m.Step(ev.ev(st.now))
			if got := fxNames(fx); got != want.fx {
				t.Errorf("%s x %s: effects %q, want %q", st.name, ev.name, got, want.fx)
			}
			if m.Health() != want.health {
				t.Errorf("%s x %s: health %v, want %v", st.name, ev.name, m.Health(), want.health)
			}
			if m.Negotiation() != want.neg {
				t.Errorf("%s x %s: negotiation %v, want %v", st.name, ev.name, m.Negotiation(), want.neg)
			}
			if got := m.Multiplex(st.now); got != want.mux {
				t.Errorf("%s x %s: multiplex %v, want %v", st.name, ev.name, got, want.mux)
			}
			if m.Alive() != (m.Health() == Alive) {
				t.Errorf("%s x %s: Alive() disagrees with Health()", st.name, ev.name)
			}
		}
		if len(rows) != len(events) {
			t.Errorf("state %q: %d rows for %d events", st.name, len(rows), len(events))
		}
	}
	if len(table) != len(states()) {
		t.Errorf("table has %d states, the test builds %d", len(table), len(states()))
	}
}

// TestEffectArguments checks what the effects carry: the probe is armed at the end of dead-time; the
// hold-down lasts HoldDown from the desync and is extended (silently) by another one.
func TestEffectArguments(t *testing.T) {
	m := fresh()
	fx := m.Step(Failed{At: t0, Cause: "connect refused"})
	if d, ok := fx[0].(LogDead); !ok || d.Cause != "connect refused" || d.DeadTime != deadTime {
		t.Fatalf("first effect %#v, want LogDead with the cause and dead-time", fx[0])
	}
	if a, ok := fx[1].(ArmProbe); !ok || !a.At.Equal(t0.Add(deadTime)) || !m.DeadUntil().Equal(a.At) {
		t.Fatalf("second effect %#v, want ArmProbe at %v (DeadUntil %v)", fx[1], t0.Add(deadTime), m.DeadUntil())
	}
	// A probe timer firing early (a renewed dead-time) does not start a probe.
	if fx := m.Step(ProbeDue{At: t0.Add(deadTime - time.Nanosecond)}); len(fx) != 0 || m.Health() != Dead {
		t.Fatalf("early ProbeDue: %s, health %v", fxNames(fx), m.Health())
	}
	// A failed probe starts a fresh dead-time from the failure.
	m.Step(ProbeDue{At: t0.Add(deadTime)})
	fx = m.Step(ProbeFailed{At: t0.Add(deadTime + 2*time.Second)})
	if a, ok := fx[0].(ArmProbe); !ok || !a.At.Equal(t0.Add(2*deadTime+2*time.Second)) {
		t.Fatalf("after a failed probe: %#v", fx)
	}

	h := fresh()
	fx = h.Step(Desynced{At: t0, Reason: "session"})
	if l, ok := fx[0].(LogHoldDown); !ok || !l.Until.Equal(t0.Add(holdDown)) || l.Reason != "session" {
		t.Fatalf("desync effect %#v", fx[0])
	}
	h.Step(Desynced{At: t0.Add(time.Minute), Reason: "seq"})
	if !h.HoldDownUntil().Equal(t0.Add(time.Minute + holdDown)) {
		t.Fatalf("a second desync must extend the hold-down: until %v", h.HoldDownUntil())
	}
	if !h.HeldDown(t0.Add(holdDown)) || h.HeldDown(t0.Add(time.Minute+holdDown)) {
		t.Fatal("hold-down boundaries wrong")
	}
}

// TestNotSingleConnect: a server not configured for single-connect never multiplexes, whatever it answers.
func TestNotSingleConnect(t *testing.T) {
	m := New(Config{})
	m.Step(Negotiated{At: t0, Agreed: true})
	if m.Multiplex(t0) {
		t.Fatal("multiplexing on a server not configured for single-connect")
	}
}

// TestRetireAt: the age limit with jitter stays within MaxAge*(1±MaxAgeJitter); a negative MaxAge disables it.
func TestRetireAt(t *testing.T) {
	m := New(Config{MaxAge: 10 * time.Minute})
	for _, tc := range []struct {
		j    float64
		want time.Duration
	}{{0, 10 * time.Minute}, {1, 11 * time.Minute}, {-1, 9 * time.Minute}, {5, 11 * time.Minute}, {-5, 9 * time.Minute}} {
		if got := m.RetireAt(t0, tc.j).Sub(t0); got != tc.want {
			t.Errorf("RetireAt(jitter %v) = %v, want %v", tc.j, got, tc.want)
		}
	}
	if d := New(Config{}).RetireAt(t0, 0).Sub(t0); d != DefaultMaxAge {
		t.Errorf("default age limit %v, want %v", d, DefaultMaxAge)
	}
	if !New(Config{MaxAge: -1}).RetireAt(t0, 0).IsZero() {
		t.Error("a negative MaxAge must disable the age limit")
	}
}
