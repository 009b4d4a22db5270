package fsm_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// The transition tables (authen_test.go, author_test.go, acct_test.go) list, for every state a machine can
// reach and every kind of event, the next state, the effects and the error. The kinds of event are the
// events of the issue (start, packet received, user input, timeout, connection lost, abort), with the
// packet split by what it carries: each status, and each way a packet can be wrong.

// The packet events that are not a plain status.
const (
	evStart         = "Start"
	evInput         = "Input"
	evTimeout       = "Timeout"
	evLost          = "ConnectionLost"
	evAbort         = "Abort"
	evWrongSeq      = "wrong seq_no"
	evWrongSession  = "wrong session_id"
	evWrongType     = "wrong packet type"
	evWrongBody     = "wrong body type"
	evWrongVersion  = "wrong version"
	evErrorOtherVer = "ERROR at other minor version"
	evUndecodable   = "undecodable body"
	evBadSecret     = "bad secret"
)

// Effects are written as "send START; complete": the kind, and for sends the body's name.
const (
	fxNone     = "-"
	fxRefused  = "refused"
	fxComplete = "complete"
)

// row is one line of a transition table. err is the class of the completion error (nil for success), or
// fsm.ErrUnexpectedEvent / fsm.ErrFinished when Step refuses the event.
type row[S fmt.Stringer] struct {
	from  S
	event string
	to    S
	fx    string
	err   error
}

// harness drives one machine variant into any of its states and builds each kind of event.
type harness[S comparable] struct {
	states []S                                     // every state the variant can reach
	events []string                                // every kind of event
	reach  func(t *testing.T, s S) *driven         // a fresh machine in state s
	state  func(m fsm.Machine) S                   // the machine's state
	packet func(d *driven, event string) fsm.Event // a packet event of a kind, nil-Kind when not a packet
}

// driven is a machine with what the test knows about its session.
type driven struct {
	m        fsm.Machine
	sid      uint32
	ptype    tacplus.PacketType
	version  uint8
	lastRecv uint8 // seq_no of the last reply fed to the machine, 0 if none
}

// step feeds one event and records the seq_no of accepted replies.
func (d *driven) step(t *testing.T, ev fsm.Event) []fsm.Effect {
	t.Helper()
	effs, err := d.m.Step(ev)
	if err != nil {
		t.Fatalf("driving: %s: %v", ev, err)
	}
	if ev.Kind == fsm.EventPacket {
		d.lastRecv = ev.Header.SeqNo
	}
	return effs
}

func (d *driven) header(seq uint8) tacplus.Header {
	return tacplus.Header{Version: d.version, Type: d.ptype, SeqNo: seq, SessionID: d.sid}
}

// otherVersion is the session's version with the other minor version.
func (d *driven) otherVersion() uint8 { return d.version ^ 1 }

// commonPacket builds the packet events every machine shares; reply makes a reply body of a status name.
func commonPacket(d *driven, event string, reply func(status string) tacplus.Body, foreign tacplus.Body) fsm.Event {
	next := d.lastRecv + 2
	if d.lastRecv == 0 {
		next = 2
	}
	h := d.header(next)
	switch event {
	case evWrongSeq:
		h.SeqNo += 2
		return fsm.Packet(h, reply("PASS"))
	case evWrongSession:
		h.SessionID++
		return fsm.Packet(h, reply("PASS"))
	case evWrongType:
		h.Type = h.Type%3 + 1 // another of the three types
		return fsm.Packet(h, foreign)
	case evWrongBody:
		return fsm.Packet(h, foreign)
	case evWrongVersion:
		h.Version = d.otherVersion()
		return fsm.Packet(h, reply("PASS"))
	case evErrorOtherVer:
		h.Version = d.otherVersion()
		return fsm.Packet(h, reply("ERROR"))
	case evUndecodable:
		return fsm.BadPacket(h, &tacplus.DecodeError{Reason: tacplus.ReasonText, Field: "server_msg", Detail: "not printable"})
	case evBadSecret:
		return fsm.BadPacket(h, &tacplus.DecodeError{Reason: tacplus.ReasonBadSecret, Field: "authen_reply"})
	case evStart:
		return fsm.Start()
	case evInput:
		return fsm.Input([]byte("answer"))
	case evTimeout:
		return fsm.Timeout()
	case evLost:
		return fsm.ConnectionLost(errors.New("read: connection reset by peer"))
	case evAbort:
		return fsm.Abort("user pressed ^C")
	}
	return fsm.Packet(h, reply(event))
}

// describe renders effects the way the tables write them.
func describe(effs []fsm.Effect) string {
	if len(effs) == 0 {
		return fxNone
	}
	parts := make([]string, len(effs))
	for i, e := range effs {
		switch e.Kind {
		case fsm.EffectSend:
			parts[i] = "send " + bodyName(e.Body)
		case fsm.EffectPrompt:
			parts[i] = "prompt " + e.Prompt.Status.String()
			if e.Prompt.NoEcho {
				parts[i] += " noecho"
			}
		case fsm.EffectComplete:
			parts[i] = fxComplete
		default:
			parts[i] = e.Kind.String()
		}
	}
	return strings.Join(parts, "; ")
}

func bodyName(b tacplus.Body) string {
	switch b := b.(type) {
	case *tacplus.AuthenStart:
		return "START"
	case *tacplus.AuthenContinue:
		if b.Flags&tacplus.FlagAbort != 0 {
			return "CONTINUE(ABORT)"
		}
		return "CONTINUE"
	case *tacplus.AuthorRequest, *tacplus.AcctRequest:
		return "REQUEST"
	}
	return fmt.Sprintf("%T", b)
}

// runTable checks that the table covers every (state, event) pair of the variant exactly once, then runs
// every row on a fresh machine.
func runTable[S interface {
	comparable
	fmt.Stringer
}](t *testing.T, h harness[S], rows []row[S]) {
	t.Helper()
	seen := map[[2]string]int{}
	for _, r := range rows {
		seen[[2]string{r.from.String(), r.event}]++
	}
	for _, s := range h.states {
		for _, e := range h.events {
			switch n := seen[[2]string{s.String(), e}]; n {
			case 1:
			case 0:
				t.Errorf("table is missing state %s × event %q", s, e)
			default:
				t.Errorf("table lists state %s × event %q %d times", s, e, n)
			}
		}
	}
	if want := len(h.states) * len(h.events); len(rows) != want {
		t.Errorf("table has %d rows, want %d (states × events)", len(rows), want)
	}
	for _, r := range rows {
		t.Run(r.from.String()+"/"+r.event, func(t *testing.T) {
			d := h.reach(t, r.from)
			if got := h.state(d.m); got != r.from {
				t.Fatalf("reached %s, want %s", got, r.from)
			}
			ev := h.packet(d, r.event)
			effs, err := d.m.Step(ev)
			if got := h.state(d.m); got != r.to {
				t.Errorf("state %s, want %s", got, r.to)
			}
			if r.fx == fxRefused {
				if err == nil || !errors.Is(err, r.err) || !errors.Is(err, tacplus.ErrProtocol) || effs != nil {
					t.Fatalf("Step = %v, %v; want refused with %v", effs, err, r.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Step refused: %v", err)
			}
			if got := describe(effs); got != r.fx {
				t.Errorf("effects %q, want %q", got, r.fx)
			}
			checkSends(t, d, ev, effs)
			for _, e := range effs {
				if e.Kind == fsm.EffectComplete {
					checkCompletion(t, d, e, r.from.String(), r.err)
				}
			}
			if (r.to.String() == "Done") != d.m.Done() {
				t.Errorf("Done() = %v in state %s", d.m.Done(), r.to)
			}
		})
	}
}

// checkSends verifies the header of every packet sent: session, type, version and the next odd seq_no.
func checkSends(t *testing.T, d *driven, ev fsm.Event, effs []fsm.Effect) {
	t.Helper()
	want := d.lastRecv + 1
	if ev.Kind == fsm.EventPacket {
		want = ev.Header.SeqNo + 1 // an answer to this packet (GETUSER answered by the machine itself)
	}
	for _, e := range effs {
		if e.Kind != fsm.EffectSend {
			continue
		}
		if e.Header != d.header(want) {
			t.Errorf("sent header %+v, want %+v", e.Header, d.header(want))
		}
		if e.Body == nil || e.Body.PacketType() != d.ptype {
			t.Errorf("sent body %T in a %s session", e.Body, d.ptype)
		}
	}
}

// checkCompletion verifies the completion error's class and that it names the session and the state.
func checkCompletion(t *testing.T, d *driven, e fsm.Effect, from string, class error) {
	t.Helper()
	if e.Authen == nil && e.Author == nil && e.Acct == nil {
		t.Errorf("completion without a result")
	}
	if class == nil {
		if e.Err != nil {
			t.Errorf("completion error %v, want success", e.Err)
		}
		return
	}
	if !errors.Is(e.Err, class) {
		t.Fatalf("completion error %v, want class %v", e.Err, class)
	}
	var te *tacplus.Error
	if !errors.As(e.Err, &te) {
		t.Fatalf("completion error %T is not a *tacplus.Error", e.Err)
	}
	if te.SessionID != d.sid || te.State != from {
		t.Errorf("error names session 0x%x state %q, want 0x%x %q", te.SessionID, te.State, d.sid, from)
	}
	if got := tacplus.ClassOf(e.Err); got != class {
		t.Errorf("ClassOf = %v, want %v", got, class)
	}
}
