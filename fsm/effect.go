package fsm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tacagent/tacagent/tacplus"
)

// EffectKind says what the caller must do.
type EffectKind uint8

// The effects a machine asks for.
const (
	// EffectSend: write Header and Body to the session's connection. The connection adds the
	// single-connect flag and obfuscates; Header.Length is left to the encoder.
	EffectSend EffectKind = iota + 1
	// EffectPrompt: ask the user Prompt and answer with EventInput (or EventAbort).
	EffectPrompt
	// EffectComplete: the session is over. Err is nil on success; the result pointer of the machine's
	// kind (Authen, Author or Acct) is set either way.
	EffectComplete
)

func (k EffectKind) String() string {
	switch k {
	case EffectSend:
		return "send"
	case EffectPrompt:
		return "prompt"
	case EffectComplete:
		return "complete"
	}
	return unknownEnum("effect", uint8(k))
}

// Prompt is a server's request for user input during authentication (RFC 8907 section 5.4).
type Prompt struct {
	Status  tacplus.AuthenStatus // GETUSER, GETPASS or GETDATA
	Message string               // server_msg, to show to the user (may be empty)
	// NoEcho: the answer must not be echoed (TAC_PLUS_REPLY_FLAG_NOECHO). It is also set for GETPASS,
	// so that a password is never echoed even when a server forgets the flag.
	NoEcho bool
}

// Effect is one action for the caller. Only the fields of its Kind are set. The effects a Step returns
// live in the machine and are valid until its next Step or Reset; the Body and Err they carry stay valid
// for as long as the caller keeps them, the result pointer until the machine's Reset.
type Effect struct {
	Kind EffectKind
	// EffectSend.
	Header tacplus.Header
	Body   tacplus.Body
	// EffectPrompt.
	Prompt Prompt
	// EffectComplete: nil on PASS, PASS_ADD/PASS_REPL or SUCCESS, else a *tacplus.Error.
	Err error
	// EffectComplete: the result of the machine's kind. It points into the machine and is final; Reset
	// reuses it, so a caller that reuses machines copies the result first.
	Authen *AuthenResult
	Author *AuthorResult
	Acct   *AcctResult
}

// String describes the effect, with the codec's redaction of passwords and CHAP responses.
func (e Effect) String() string {
	switch e.Kind {
	case EffectSend:
		return "send " + headerString(e.Header) + " " + bodyString(e.Body)
	case EffectPrompt:
		echo := "echo"
		if e.Prompt.NoEcho {
			echo = "noecho"
		}
		return fmt.Sprintf("prompt %s %s %q", e.Prompt.Status, echo, e.Prompt.Message)
	case EffectComplete:
		var r string
		switch {
		case e.Authen != nil:
			r = e.Authen.String()
		case e.Author != nil:
			r = e.Author.String()
		case e.Acct != nil:
			r = e.Acct.String()
		}
		if e.Err != nil {
			return "complete " + r + " err=" + strconv.Quote(e.Err.Error())
		}
		return "complete " + r
	}
	return e.Kind.String()
}

// GoString is String, so that %#v redacts too.
func (e Effect) GoString() string { return e.String() }

// Wait says whose turn it is in a session, so that the caller arms the right timer.
type Wait uint8

// The turns.
const (
	WaitNone   Wait = iota // not started, or completed
	WaitServer             // a packet was sent; a reply is due
	WaitUser               // a prompt is pending; EventInput is due
)

func (w Wait) String() string {
	switch w {
	case WaitNone:
		return "none"
	case WaitServer:
		return "server"
	case WaitUser:
		return "user"
	}
	return unknownEnum("wait", uint8(w))
}

// Machine is what the three session machines have in common, for a driver that runs any of them.
type Machine interface {
	// Step feeds one event and returns the effects to carry out, in order. A non-nil error means the
	// event was refused in this state (ErrUnexpectedEvent, ErrFinished); the machine is unchanged then.
	Step(Event) ([]Effect, error)
	// SessionID is the session_id of every packet of the session.
	SessionID() uint32
	// StateName is the name of the current state, as errors report it.
	StateName() string
	// Wait says whose turn it is.
	Wait() Wait
	// Done reports whether the session has completed.
	Done() bool
	// Replied reports whether a packet from the server has been accepted for the session. A request that
	// lost its connection before any reply was seen is safe to send elsewhere (docs/architecture.md, retry safety).
	Replied() bool
	// SecretSent reports whether a password, a CHAP response or a user's answer has been sent.
	SecretSent() bool
}

var (
	_ Machine = (*Authen)(nil)
	_ Machine = (*Author)(nil)
	_ Machine = (*Acct)(nil)
)

// headerString prints what the machine sets in a header (the encoder sets the length and the flags).
func headerString(h tacplus.Header) string {
	return fmt.Sprintf("%s v%d.%d seq=%d session=0x%08x", h.Type, h.Version>>4, h.Version&0x0f, h.SeqNo, h.SessionID)
}

// bodyString prints a body, relying on the codec's redacting String methods for the bodies that can
// carry secrets.
func bodyString(b tacplus.Body) string {
	switch b := b.(type) {
	case nil:
		return "<no body>"
	case *tacplus.AuthenStart:
		return b.String()
	case *tacplus.AuthenContinue:
		return b.String()
	case *tacplus.AuthenReply:
		return b.String()
	case *tacplus.AuthorRequest:
		return fmt.Sprintf("AUTHOR_REQUEST{method=%s priv=%d type=%s service=%s user=%q port=%q rem_addr=%q args=%s}",
			b.Method, b.PrivLvl, b.Type, b.Service, b.User, b.Port, b.RemAddr, argList(b.Args))
	case *tacplus.AuthorResponse:
		return fmt.Sprintf("AUTHOR_RESPONSE{status=%s server_msg=%q data=%q args=%s}", b.Status, b.ServerMsg, b.Data, argList(b.Args))
	case *tacplus.AcctRequest:
		return fmt.Sprintf("ACCT_REQUEST{flags=%s method=%s priv=%d type=%s service=%s user=%q port=%q rem_addr=%q args=%s}",
			b.Flags, b.Method, b.PrivLvl, b.Type, b.Service, b.User, b.Port, b.RemAddr, argList(b.Args))
	case *tacplus.AcctReply:
		return fmt.Sprintf("ACCT_REPLY{status=%s server_msg=%q data=%q}", b.Status, b.ServerMsg, b.Data)
	}
	return fmt.Sprintf("%T", b)
}

func argList(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, " ") + "]"
}
