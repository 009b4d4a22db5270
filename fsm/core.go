package fsm

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/tacagent/tacagent/tacplus"
)

// Why Step refused an event. Both are wrapped in a *tacplus.Error of class tacplus.ErrProtocol that names
// the session and the state, so that a caller can pass them on as they are.
var (
	// ErrUnexpectedEvent: the event has no meaning in the machine's state, such as input while no prompt
	// is pending or a second Start. The machine is unchanged.
	ErrUnexpectedEvent = errors.New("fsm: event not accepted in this state")
	// ErrFinished: the session has already completed; late packets and timers land here.
	ErrFinished = errors.New("fsm: session already completed")
)

// maxEffects is the most effects one Step produces: a CONTINUE with the ABORT flag, then the completion.
const maxEffects = 2

// lastClientSeq is the highest seq_no a client may send: 255 must never be reached (RFC 8907 section
// 4.1), and clients send odd numbers.
const lastClientSeq = 253

// core is what every session machine shares: the session's identity and version, the sequence numbers
// and the effect buffer.
type core struct {
	sessionID  uint32
	version    uint8 // version byte of every packet of the session (section 5.4.1)
	ptype      tacplus.PacketType
	seq        uint8 // seq_no of the last packet sent; 0 before the first
	replied    bool
	secretSent bool
	eff        [maxEffects]Effect
	n          int
}

// reset starts a new session. It sets the fields one by one: copying a whole core would copy the
// effect buffer, pointers and all, which costs write barriers on every session.
func (c *core) reset(sessionID uint32, version uint8, t tacplus.PacketType) {
	c.begin()
	c.sessionID, c.version, c.ptype = sessionID, version, t
	c.seq, c.replied, c.secretSent = 0, false, false
}

// begin clears the effects of the previous step.
func (c *core) begin() {
	for i := 0; i < c.n; i++ {
		c.eff[i] = Effect{}
	}
	c.n = 0
}

func (c *core) effects() []Effect {
	if c.n == 0 {
		return nil
	}
	return c.eff[:c.n]
}

// nextSeq is the seq_no of the client's next packet: 1 for the first, then the reply's plus one.
func (c *core) nextSeq() uint8 {
	if c.seq == 0 {
		return 1
	}
	return c.seq + 2
}

func (c *core) send(body tacplus.Body) {
	c.seq = c.nextSeq()
	c.eff[c.n] = Effect{
		Kind:   EffectSend,
		Header: tacplus.Header{Version: c.version, Type: c.ptype, SeqNo: c.seq, SessionID: c.sessionID},
		Body:   body,
	}
	c.n++
}

func (c *core) prompt(p Prompt) {
	c.eff[c.n] = Effect{Kind: EffectPrompt, Prompt: p}
	c.n++
}

func (c *core) complete(e Effect) {
	e.Kind = EffectComplete
	c.eff[c.n] = e
	c.n++
}

// SessionID implements Machine.
func (c *core) SessionID() uint32 { return c.sessionID }

// Replied implements Machine.
func (c *core) Replied() bool { return c.replied }

// SecretSent implements Machine.
func (c *core) SecretSent() bool { return c.secretSent }

// sessionError builds the *tacplus.Error of a completion or a refusal.
func (c *core) sessionError(class error, state string, cause error, msg string) *tacplus.Error {
	return &tacplus.Error{Class: class, SessionID: c.sessionID, State: state, Msg: msg, Err: cause}
}

func (c *core) refuse(why error, state string, ev Event) error {
	return c.sessionError(tacplus.ErrProtocol, state, why, ev.Kind.String()+" refused")
}

// checkPacket applies the checks every reply shares, before its body is looked at: a body that decoded,
// the session_id, the packet type and seq_no (section 4.1). It returns the error class and cause, or nil.
func (c *core) checkPacket(ev *Event) (class error, cause error) {
	h := ev.Header
	switch {
	case ev.Err != nil:
		// The codec's error: ErrBadSecret when the lengths do not add up after de-obfuscation.
		if errors.Is(ev.Err, tacplus.ErrBadSecret) {
			return tacplus.ErrBadSecret, ev.Err
		}
		return tacplus.ErrProtocol, ev.Err
	case h.SessionID != c.sessionID:
		return tacplus.ErrProtocol, badPacket(tacplus.ReasonSession, "session_id", "0x%08x, want 0x%08x", h.SessionID, c.sessionID)
	case h.Type != c.ptype:
		return tacplus.ErrProtocol, badPacket(tacplus.ReasonType, "type", "%s packet, the session is %s", h.Type, c.ptype)
	case h.SeqNo != c.seq+1:
		return tacplus.ErrProtocol, badPacket(tacplus.ReasonSeq, "seq_no", "%d, want %d (RFC 8907 section 4.1)", h.SeqNo, c.seq+1)
	case ev.Body == nil:
		return tacplus.ErrProtocol, badPacket(tacplus.ReasonType, "body", "packet without a body")
	}
	return nil, nil
}

// checkVersion enforces section 5.4.1: every packet of a session carries the version the session started
// with. errorStatus relaxes it for an ERROR reply, which a server that does not support the session's
// minor version sends with the version it does support.
func (c *core) checkVersion(h tacplus.Header, errorStatus bool) error {
	if h.Version == c.version || errorStatus {
		return nil
	}
	return badPacket(tacplus.ReasonVersion, "minor_version", "0x%02x, the session uses 0x%02x (RFC 8907 section 5.4.1)", h.Version, c.version)
}

// badPacket is the cause of a protocol error, a codec error value so that tacplus.ReasonOf gives the
// metric label.
func badPacket(r tacplus.Reason, field, format string, args ...any) error {
	return &tacplus.DecodeError{Reason: r, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// wrongBody is the cause when a packet of the right type carries a body the client never receives.
func wrongBody(b tacplus.Body, want string) error {
	return badPacket(tacplus.ReasonType, "body", "%T, want %s", b, want)
}

// serverSaid builds an error message from the server's message, or a fallback when it sent none.
func serverSaid(serverMsg, fallback string) string {
	if serverMsg != "" {
		return fallback + ": " + serverMsg
	}
	return fallback
}

// unknownEnum names a value no constant has, so that String never panics and never hides the number.
func unknownEnum(kind string, v uint8) string { return kind + "(" + strconv.Itoa(int(v)) + ")" }

// statusName prints a reply status, or "none" when the session ended without a final reply.
func statusName(s fmt.Stringer, zero bool) string {
	if zero {
		return "none"
	}
	return s.String()
}

// printable reports whether s is printable US-ASCII (section 3.7), for text the client sends.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// configError is a construction error: the caller's request cannot make a valid session.
func configError(sessionID uint32, cause error, format string, args ...any) error {
	return &tacplus.Error{Class: tacplus.ErrConfig, SessionID: sessionID, Msg: fmt.Sprintf(format, args...), Err: cause}
}
