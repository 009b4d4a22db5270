package fsm

import "github.com/tacagent/tacagent/tacplus"

// The machines of one REQUEST and one reply (authorization, section 6; accounting, section 7) share their
// Step: only the reply's meaning differs. Their state enums give these numbers to their three states.
const (
	oneShotIdle  = iota + 1 // made, REQUEST not sent
	oneShotAwait            // REQUEST sent (seq_no 1), waiting for the reply (seq_no 2)
	oneShotDone             // completed
)

// oneShotName is the String of the one-shot state enums.
func oneShotName(kind string, v uint8) string {
	switch v {
	case oneShotIdle:
		return "Idle"
	case oneShotAwait:
		return "AwaitReply"
	case oneShotDone:
		return "Done"
	}
	return unknownEnum(kind, v)
}

type oneShotState interface {
	~uint8
	String() string
}

// oneShot is what a one-shot machine adds to stepOneShot: the meaning of a reply, and how it completes
// with an error. (An interface rather than func values: a pointer in an interface costs no allocation.)
type oneShot interface {
	onPacket(Event) // by value: a pointer through an interface call would move the event to the heap
	fail(class, cause error, msg string)
}

// oneShotMachine is the part of a one-shot machine that does not depend on the meaning of its reply.
type oneShotMachine[S oneShotState] struct {
	core
	state S
}

// State returns the current state.
func (o *oneShotMachine[S]) State() S { return o.state }

// StateName implements Machine.
func (o *oneShotMachine[S]) StateName() string { return o.state.String() }

// Done implements Machine.
func (o *oneShotMachine[S]) Done() bool { return o.state == oneShotDone }

// Wait implements Machine.
func (o *oneShotMachine[S]) Wait() Wait {
	if o.state == oneShotAwait {
		return WaitServer
	}
	return WaitNone
}

// step is the Step of the one-shot machine m, which sends req.
func (o *oneShotMachine[S]) step(ev Event, req tacplus.Body, m oneShot) ([]Effect, error) {
	c := &o.core
	c.begin()
	state := o.state
	switch {
	case state == oneShotDone:
		return nil, c.refuse(ErrFinished, state.String(), ev)
	case state != oneShotIdle && state != oneShotAwait:
		return nil, c.refuse(ErrUnexpectedEvent, state.String(), ev)
	}
	switch ev.Kind {
	case EventStart:
		if state != oneShotIdle {
			return nil, c.refuse(ErrUnexpectedEvent, state.String(), ev)
		}
		c.send(req)
		o.state = oneShotAwait
	case EventPacket:
		if state == oneShotIdle {
			// Nothing was sent: the packet cannot be a reply to this session.
			return nil, c.refuse(ErrUnexpectedEvent, state.String(), ev)
		}
		m.onPacket(ev)
	case EventTimeout:
		m.fail(tacplus.ErrTimeout, ev.Err, timeoutMsg(state == oneShotIdle))
	case EventConnectionLost:
		m.fail(tacplus.ErrConnectionLost, ev.Err, "")
	case EventAbort:
		// Authorization and accounting have no abort packet: the session just ends here.
		m.fail(tacplus.ErrAborted, nil, "")
	default: // EventInput among others: these sessions never prompt
		return nil, c.refuse(ErrUnexpectedEvent, state.String(), ev)
	}
	return c.effects(), nil
}

// timeoutMsg words a timeout in Idle (the caller's deadline passed before the session started) or
// while waiting for the server.
func timeoutMsg(idle bool) string {
	if idle {
		return "timed out before the request was sent"
	}
	return "no reply from the server"
}

// acceptReply checks a reply: checkPacket, then the body's type, then the version, in which an ERROR may
// differ (isError tells). It returns the body, or the class and cause of the protocol error.
func acceptReply[B tacplus.Body](c *core, ev *Event, want string, isError func(B) bool) (body B, class, cause error) {
	if class, cause = c.checkPacket(ev); class != nil {
		return body, class, cause
	}
	body, ok := ev.Body.(B)
	if !ok {
		return body, tacplus.ErrProtocol, wrongBody(ev.Body, want)
	}
	if err := c.checkVersion(ev.Header, isError(body)); err != nil {
		return body, tacplus.ErrProtocol, err
	}
	return body, nil, nil
}
