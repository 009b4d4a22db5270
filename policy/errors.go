package policy

import (
	"context"
	"errors"
	"strings"

	"github.com/tacagent/tacagent/tacplus"
)

// ResultOf maps a handler's error to its Result, through the project's error taxonomy
// (tacplus/errors.go):
//
//	nil                                                   -> Success
//	ErrAuthenticationFailed, ErrDenied                    -> Fail
//	ErrUnreachable, ErrTimeout, ErrConnectionLost,
//	ErrServerError, ErrBadSecret, ErrProtocol,
//	context.DeadlineExceeded                              -> Unavailable
//	ErrAborted, ErrConfig, context.Canceled, anything else -> Error
//
// Why a bad secret and a garbled reply count as Unavailable rather than Error: to the operator they are
// "this server gave no usable answer", exactly like a timeout. The usual cause is a key rotated on one
// side only, and that is the moment the next server, or the local break-glass account, must still work.
// It opens nothing to an attacker: whoever can corrupt a reply on the path can also drop it, which is
// Unavailable anyway. Error is kept for what no other server or method can fix: the user gave up
// (ErrAborted), this handler is misconfigured (ErrConfig), or a handler broke its contract with an
// unclassified error.
func ResultOf(err error) Result {
	if err == nil {
		return Success
	}
	switch tacplus.ClassOf(err) {
	case tacplus.ErrAuthenticationFailed, tacplus.ErrDenied:
		return Fail
	case tacplus.ErrUnreachable, tacplus.ErrTimeout, tacplus.ErrConnectionLost,
		tacplus.ErrServerError, tacplus.ErrBadSecret, tacplus.ErrProtocol:
		return Unavailable
	case tacplus.ErrAborted, tacplus.ErrConfig:
		return Error
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Unavailable
	}
	return Error
}

// classOfResult is the taxonomy class a stack's final result wraps, so that errors.Is works on a Denial
// at the level of the whole stack: a final FAIL, and a stack that denied by its controls alone (Denied),
// are ErrAuthenticationFailed; nothing usable answered is ErrUnreachable (the deciding handler's own
// class, such as ErrTimeout, is wrapped too).
func classOfResult(r Result, cause error) error {
	switch r {
	case Fail, Denied:
		return tacplus.ErrAuthenticationFailed
	case Unavailable:
		return tacplus.ErrUnreachable
	}
	if c := tacplus.ClassOf(cause); c != nil {
		return c
	}
	switch {
	case errors.Is(cause, context.Canceled):
		return tacplus.ErrAborted
	case errors.Is(cause, context.DeadlineExceeded):
		return tacplus.ErrTimeout
	}
	return nil // an unclassified handler error: tacplus.ClassName says "unknown"
}

// Denial is the error a Stack returns when it does not authenticate a request. It matches, with
// errors.Is, the class of the stack's result (see classOfResult) and everything the deciding handler's
// error matches; errors.As finds that handler's *tacplus.Error (server, session, state). Its message
// explains the whole request, such as
//
//	authentication failed: core: server 192.0.2.1:49 timed out; core: server 192.0.2.2:49 said FAIL; local: not tried
type Denial struct {
	Result  Result          // Fail, Unavailable, Error or Denied
	Class   error           // the taxonomy class; nil only for an unclassified handler error
	Cause   error           // the deciding handler's error; nil when the stack's controls alone denied
	Context *RequestContext // every handler's outcome, in order

	note string // why, when the stack itself rather than a handler decided
}

func (d *Denial) Error() string {
	var b strings.Builder
	if d.Class != nil {
		b.WriteString(d.Class.Error())
	} else {
		b.WriteString("authentication error")
	}
	if d.Context != nil {
		if x := d.Context.Explain(); x != "" {
			b.WriteString(": ")
			b.WriteString(x)
		}
	}
	if d.note != "" {
		b.WriteString(" (" + d.note + ")")
	}
	return b.String()
}

// ErrorClass implements tacplus.Classed: the stack's overall class, not the deciding handler's.
func (d *Denial) ErrorClass() error { return d.Class }

// Unwrap exposes the class and the deciding handler's error.
func (d *Denial) Unwrap() []error {
	var out []error
	if d.Class != nil {
		out = append(out, d.Class)
	}
	if d.Cause != nil {
		out = append(out, d.Cause)
	}
	return out
}

// describe says in a few words what err means for a server (server != "") or a handler.
func describe(server string, err error) string {
	var what string
	if server != "" {
		switch tacplus.ClassOf(err) {
		case tacplus.ErrAuthenticationFailed:
			what = "said FAIL"
		case tacplus.ErrServerError:
			what = "said ERROR"
		case tacplus.ErrUnreachable:
			what = "is unreachable"
		case tacplus.ErrTimeout:
			what = "timed out"
		case tacplus.ErrConnectionLost:
			what = "lost the connection"
		case tacplus.ErrProtocol:
			what = "sent a malformed reply"
		case tacplus.ErrBadSecret:
			what = "has a different shared secret"
		}
		if what != "" {
			what = "server " + server + " " + what
		}
	}
	if what == "" {
		switch tacplus.ClassOf(err) {
		case tacplus.ErrAuthenticationFailed:
			what = "failed"
		case tacplus.ErrServerError:
			what = "server error"
		case tacplus.ErrUnreachable:
			what = "unreachable"
		case tacplus.ErrTimeout:
			what = "timed out"
		case tacplus.ErrConnectionLost:
			what = "connection lost"
		case tacplus.ErrProtocol:
			what = "protocol error"
		case tacplus.ErrBadSecret:
			what = "bad shared secret"
		case tacplus.ErrAborted:
			what = "aborted"
		case tacplus.ErrConfig:
			what = "misconfigured"
		case tacplus.ErrDenied:
			what = "denied"
		default:
			return err.Error()
		}
	}
	// The message and the full cause: "sent a malformed reply (bad reply: tacplus: seq in seq_no: 4, want
	// 2 ...)" tells an operator which packet was wrong, not only that one was.
	var te *tacplus.Error
	if errors.As(err, &te) {
		var detail []string
		if te.Msg != "" {
			detail = append(detail, te.Msg)
		}
		if te.Err != nil {
			detail = append(detail, te.Err.Error())
		}
		if len(detail) > 0 {
			what += " (" + strings.Join(detail, ": ") + ")"
		}
	}
	return what
}
