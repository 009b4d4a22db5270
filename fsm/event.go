package fsm

import (
	"fmt"

	"github.com/tacagent/tacagent/tacplus"
)

// EventKind says what happened to a session.
type EventKind uint8

// The events a machine accepts.
const (
	// EventStart sends the session's first packet (START or REQUEST). It is accepted once, in the
	// machine's Idle state.
	EventStart EventKind = iota + 1
	// EventPacket is a packet from the server for this session: Header and Body, or Header and Err when
	// the body could not be decoded (a bad secret, a text rule, ...).
	EventPacket
	// EventInput is the user's answer (Input) to the last prompt.
	EventInput
	// EventTimeout is the expiry of the caller's timer: no reply from the server, or no answer from the
	// user, in time.
	EventTimeout
	// EventConnectionLost says the connection carrying the session is gone; Err holds the cause.
	EventConnectionLost
	// EventAbort ends the session at the user's or the caller's request; Reason is sent to the server when
	// the protocol allows it (RFC 8907 section 5.4.3) and must not hold secrets.
	EventAbort
)

func (k EventKind) String() string {
	switch k {
	case EventStart:
		return "start"
	case EventPacket:
		return "packet"
	case EventInput:
		return "input"
	case EventTimeout:
		return "timeout"
	case EventConnectionLost:
		return "connection_lost"
	case EventAbort:
		return "abort"
	}
	return unknownEnum("event", uint8(k))
}

// Event is one input to a machine. Only the fields of its Kind are read.
type Event struct {
	Kind EventKind
	// EventPacket: the packet's header and decoded body (*tacplus.AuthenReply, *tacplus.AuthorResponse
	// or *tacplus.AcctReply). The machine keeps references into Body for its result; the body must not be
	// reused by the caller.
	Header tacplus.Header
	Body   tacplus.Body
	// EventPacket: the codec's error when the body failed to decode (Body is then nil).
	// EventConnectionLost and EventTimeout: the cause, wrapped in the completion error. May be nil.
	Err error
	// EventInput: the user's answer, often a password. Step only reads it (the CONTINUE it builds holds
	// its own copy): the buffer stays the sender's, who may wipe it once Step returned.
	Input []byte
	// EventAbort: a printable reason for the server (section 5.4.3); unprintable reasons are not sent.
	Reason string
}

// Start returns an EventStart.
func Start() Event { return Event{Kind: EventStart} }

// Packet returns an EventPacket for a decoded packet.
func Packet(h tacplus.Header, b tacplus.Body) Event {
	return Event{Kind: EventPacket, Header: h, Body: b}
}

// BadPacket returns an EventPacket for a packet of this session whose body failed to decode with err.
func BadPacket(h tacplus.Header, err error) Event {
	return Event{Kind: EventPacket, Header: h, Err: err}
}

// Input returns an EventInput carrying the user's answer.
func Input(text []byte) Event { return Event{Kind: EventInput, Input: text} }

// Timeout returns an EventTimeout.
func Timeout() Event { return Event{Kind: EventTimeout} }

// ConnectionLost returns an EventConnectionLost with its cause.
func ConnectionLost(cause error) Event { return Event{Kind: EventConnectionLost, Err: cause} }

// Abort returns an EventAbort with a reason for the server.
func Abort(reason string) Event { return Event{Kind: EventAbort, Reason: reason} }

// String describes the event without ever showing the user's input.
func (e Event) String() string {
	switch e.Kind {
	case EventPacket:
		if e.Err != nil {
			return fmt.Sprintf("packet %s undecodable: %v", headerString(e.Header), e.Err)
		}
		return "packet " + headerString(e.Header) + " " + bodyString(e.Body)
	case EventInput:
		return fmt.Sprintf("input <%d bytes>", len(e.Input))
	case EventAbort:
		return fmt.Sprintf("abort reason=%q", e.Reason)
	case EventConnectionLost, EventTimeout:
		if e.Err != nil {
			return e.Kind.String() + ": " + e.Err.Error()
		}
	}
	return e.Kind.String()
}

// GoString is String, so that %#v never shows the input either.
func (e Event) GoString() string { return e.String() }
