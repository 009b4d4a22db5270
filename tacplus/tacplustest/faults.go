package tacplustest

import (
	"slices"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// Always makes a counted fault apply to every reply until the faults are changed.
const Always = -1

// Faults are the misbehaviours the server injects into its replies. Each count is how many of the next
// replies get that fault (0 none, Always every one); the server decrements it as it injects. When several
// are armed, one reply gets at most one of the faults that replace it (checked in the order DropReplies,
// CloseMidSession, Truncate, Garbage) or else every armed fault that alters it (ErrorReplies, WrongKey,
// WrongSeq, WrongSession, ToggleUnencrypted) together.
type Faults struct {
	// User limits the faults to sessions of this user; empty means every session. A session's user is
	// known from its START (or, for an ASCII login, once the user answered GETUSER).
	User string

	DropReplies     int // send nothing: the client sees a silent server
	CloseMidSession int // close the connection instead of replying
	Truncate        int // send the header and half the body, then close the connection
	Garbage         int // send bytes that are not a TACACS+ packet instead of the reply
	// ErrorReplies replaces the reply with the ERROR status of its kind (sections 5.2, 6.2, 7.2), ending the
	// session; an accounting record answered so is recorded with Status ERROR.
	ErrorReplies      int
	WrongKey          int // obfuscate the reply with a different key (section 4.5)
	WrongSeq          int // reply with a sequence number 2 higher than the right one (still even)
	WrongSession      int // reply under a different session_id (the right one XOR a mask: nobody's)
	ToggleUnencrypted int // flip TAC_PLUS_UNENCRYPTED_FLAG in the reply's header (the body stays as it was)
	// CrossSession replies under the session_id of ANOTHER live session on the same connection (true
	// misrouting: that session gets this answer, and later its own answer under its own id as well). The
	// body is obfuscated for the id in the header, so only the routing betrays it. With no other live
	// session on the connection, it falls back to WrongSession's id.
	CrossSession int
	// CloseAfterReply closes the connection right after the reply is written (a server that serves one
	// reply per connection, whatever was negotiated).
	CloseAfterReply int

	// PromptForever answers every authentication START and CONTINUE with GETDATA (a server that prompts
	// forever); an ABORT still ends the session quietly.
	PromptForever bool
	// FailDelay holds back authentication FAIL replies by this much (production servers delay FAIL by 1 s).
	FailDelay time.Duration

	// Delay holds back every reply by this much, on top of the user's own delay.
	Delay time.Duration
	// Restart answers RESTART (section 5.4.2) to an authentication START of these types.
	Restart []tacplus.AuthenType
}

func (f Faults) validate() error {
	for _, n := range []int{f.DropReplies, f.CloseMidSession, f.Truncate, f.Garbage, f.ErrorReplies,
		f.WrongKey, f.WrongSeq, f.WrongSession, f.ToggleUnencrypted, f.CrossSession, f.CloseAfterReply} {
		if n < Always {
			return tacplus.NewError(tacplus.ErrConfig, "tacplustest: fault count %d is below Always (-1)", n)
		}
	}
	if f.Delay < 0 || f.FailDelay < 0 {
		return tacplus.NewError(tacplus.ErrConfig, "tacplustest: negative fault delay")
	}
	return nil
}

// armed reports whether any fault is set, so that the hot path can skip the lock.
func (f *Faults) armed() bool {
	return f.DropReplies != 0 || f.CloseMidSession != 0 || f.Truncate != 0 || f.Garbage != 0 ||
		f.ErrorReplies != 0 || f.WrongKey != 0 || f.WrongSeq != 0 || f.WrongSession != 0 ||
		f.ToggleUnencrypted != 0 || f.Delay > 0 || len(f.Restart) > 0 || f.CrossSession != 0 ||
		f.CloseAfterReply != 0 || f.PromptForever || f.FailDelay > 0
}

// FaultCounts says how many replies got each fault since the server started.
type FaultCounts struct {
	DropReplies, CloseMidSession, Truncate, Garbage                   int64
	ErrorReplies, WrongKey, WrongSeq, WrongSession, ToggleUnencrypted int64
	Delayed, Restarts                                                 int64
	CrossSession, CloseAfterReply, PromptForever, FailDelayed         int64
}

// fault is a set of faults chosen for one reply.
type fault uint16

const (
	fDrop fault = 1 << iota
	fClose
	fTruncate
	fGarbage
	fError
	fWrongKey
	fWrongSeq
	fWrongSession
	fToggle
	fCross
	fCloseAfter
)

// plan is what happens to one reply.
type plan struct {
	f     fault
	delay time.Duration
}

// take consumes one use of a counted fault.
func take(n *int, c *int64) bool {
	if *n == 0 {
		return false
	}
	if *n > 0 {
		*n--
	}
	*c++
	return true
}

// choose picks the faults for the next reply of a session of user. The caller holds the fault lock.
func (f *Faults) choose(user string, c *FaultCounts) plan {
	var p plan
	if f.User != "" && f.User != user {
		return p
	}
	if f.Delay > 0 {
		p.delay = f.Delay
		c.Delayed++
	}
	// One replacing fault at most.
	for _, r := range []struct {
		n   *int
		c   *int64
		bit fault
	}{{&f.DropReplies, &c.DropReplies, fDrop}, {&f.CloseMidSession, &c.CloseMidSession, fClose},
		{&f.Truncate, &c.Truncate, fTruncate}, {&f.Garbage, &c.Garbage, fGarbage}} {
		if take(r.n, r.c) {
			p.f = r.bit
			return p
		}
	}
	for _, m := range []struct {
		n   *int
		c   *int64
		bit fault
	}{{&f.ErrorReplies, &c.ErrorReplies, fError}, {&f.WrongKey, &c.WrongKey, fWrongKey},
		{&f.WrongSeq, &c.WrongSeq, fWrongSeq}, {&f.WrongSession, &c.WrongSession, fWrongSession},
		{&f.ToggleUnencrypted, &c.ToggleUnencrypted, fToggle}, {&f.CrossSession, &c.CrossSession, fCross},
		{&f.CloseAfterReply, &c.CloseAfterReply, fCloseAfter}} {
		if take(m.n, m.c) {
			p.f |= m.bit
		}
	}
	return p
}

// restart reports whether a START of type t must be answered RESTART.
func (f *Faults) restart(user string, t tacplus.AuthenType, c *FaultCounts) bool {
	if f.User != "" && f.User != user {
		return false
	}
	if slices.Contains(f.Restart, t) {
		c.Restarts++
		return true
	}
	return false
}

// promptForever reports whether an authentication packet of user must be answered GETDATA.
func (f *Faults) promptForever(user string, c *FaultCounts) bool {
	if !f.PromptForever || (f.User != "" && f.User != user) {
		return false
	}
	c.PromptForever++
	return true
}

// failDelay is the extra delay of a FAIL reply to user.
func (f *Faults) failDelay(user string, c *FaultCounts) time.Duration {
	if f.FailDelay <= 0 || (f.User != "" && f.User != user) {
		return 0
	}
	c.FailDelayed++
	return f.FailDelay
}
