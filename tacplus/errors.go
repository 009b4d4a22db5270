package tacplus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The error taxonomy of the whole project (docs/architecture.md). Every error that tacagent returns, from the
// codec up to the local API, matches exactly one of these classes with errors.Is. The classes are sentinels;
// context (server, session, FSM state, cause) travels in *Error, which wraps both the class and the cause.
var (
	// ErrAuthenticationFailed: the server answered FAIL to an authentication (RFC 8907 section 5.2).
	ErrAuthenticationFailed = errors.New("authentication failed")
	// ErrServerError: the server answered ERROR (sections 5.2, 6.2, 7.2).
	ErrServerError = errors.New("server error")
	// ErrUnreachable: no connection could be made, or the server is dead-timed.
	ErrUnreachable = errors.New("server unreachable")
	// ErrTimeout: no reply came within the configured timeout.
	ErrTimeout = errors.New("timeout")
	// ErrConnectionLost: the connection carrying the session closed before the session completed.
	ErrConnectionLost = errors.New("connection lost")
	// ErrProtocol: a malformed or unexpected packet, a sequence or session mismatch.
	ErrProtocol = errors.New("protocol error")
	// ErrBadSecret: the body's field lengths do not add up after de-obfuscation, which almost always means
	// the shared secret differs between client and server (section 4.5).
	ErrBadSecret = errors.New("bad shared secret")
	// ErrAborted: the session was aborted by the user or the caller (section 5.3).
	ErrAborted = errors.New("aborted")
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("configuration error")
	// ErrDenied: the server answered FAIL to an authorization request (section 6.2).
	ErrDenied = errors.New("authorization denied")
)

// Classes lists every error class, in a stable order. Code that maps classes to exit codes, API codes or
// metric labels iterates over it so that no class is forgotten.
var Classes = []error{
	ErrAuthenticationFailed, ErrServerError, ErrUnreachable, ErrTimeout, ErrConnectionLost,
	ErrProtocol, ErrBadSecret, ErrAborted, ErrConfig, ErrDenied,
}

// Classed is implemented by errors that declare their class (*Error, and the policy's denials). The
// outermost one decides: an *Error{Class: ErrConfig} whose cause is a protocol error is a config error.
type Classed interface {
	error
	ErrorClass() error
}

// ClassOf returns the class err belongs to, or nil when it belongs to none: the class declared by the
// outermost Classed error in err's tree, or else the first class in Classes that err matches.
func ClassOf(err error) error {
	var c Classed
	if errors.As(err, &c) {
		if cls := c.ErrorClass(); cls != nil {
			return cls
		}
	}
	for _, c := range Classes {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// ClassName returns a short stable name for err's class ("authentication_failed", ...), for metric labels
// and API codes; "unknown" when err matches no class, "" when err is nil.
func ClassName(err error) string {
	if err == nil {
		return ""
	}
	switch ClassOf(err) {
	case ErrAuthenticationFailed:
		return "authentication_failed"
	case ErrServerError:
		return "server_error"
	case ErrUnreachable:
		return "unreachable"
	case ErrTimeout:
		return "timeout"
	case ErrConnectionLost:
		return "connection_lost"
	case ErrProtocol:
		return "protocol"
	case ErrBadSecret:
		return "bad_secret"
	case ErrAborted:
		return "aborted"
	case ErrConfig:
		return "config"
	case ErrDenied:
		return "denied"
	}
	return "unknown"
}

// Error is the error tacagent returns: a class from the taxonomy plus where it happened. It never holds a
// shared secret or a password; Msg is what the server or the code said, safe to log.
type Error struct {
	Class     error  // one of the class sentinels above
	Server    string // "host:port" of the server, empty when none was involved
	SessionID uint32 // 0 when no session existed yet
	State     string // FSM state name when the error happened, empty outside a session
	Msg       string // server_msg or a short explanation
	Err       error  // the underlying cause, may be nil
}

// Error renders "class: msg (server=…, session=0x…, state=…): cause".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Class != nil {
		b.WriteString(e.Class.Error())
	} else {
		b.WriteString("error")
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	var ctx []string
	if e.Server != "" {
		ctx = append(ctx, "server="+e.Server)
	}
	if e.SessionID != 0 {
		ctx = append(ctx, "session=0x"+strconv.FormatUint(uint64(e.SessionID), 16))
	}
	if e.State != "" {
		ctx = append(ctx, "state="+e.State)
	}
	if len(ctx) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(ctx, ", "))
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// ErrorClass implements Classed.
func (e *Error) ErrorClass() error { return e.Class }

// Unwrap exposes both the class and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	switch {
	case e.Class != nil && e.Err != nil:
		return []error{e.Class, e.Err}
	case e.Class != nil:
		return []error{e.Class}
	case e.Err != nil:
		return []error{e.Err}
	}
	return nil
}

// ContextError classifies the end of a caller's context: a passed deadline is ErrTimeout (no answer came in
// time), anything else ErrAborted (the caller gave up). cause, when not nil, is kept as the cause and its
// server, session and state are carried over, so that the caller still learns where the request was.
func ContextError(ctxErr error, msg string, cause error) *Error {
	e := &Error{Class: ErrAborted, Msg: msg, Err: cause}
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		e.Class = ErrTimeout
	}
	if e.Err == nil {
		e.Err = ctxErr
	}
	var inner *Error
	if errors.As(cause, &inner) {
		e.Server, e.SessionID, e.State = inner.Server, inner.SessionID, inner.State
	}
	return e
}

// NewError builds an *Error of the given class with a formatted message.
func NewError(class error, format string, args ...any) *Error {
	return &Error{Class: class, Msg: fmt.Sprintf(format, args...)}
}

// Reason names why the codec rejected a packet. It is a closed set so that it can be a metric label
// ("bad packets by reason", docs/operations.md).
type Reason uint8

// The reasons, one per validation rule.
const (
	ReasonShort     Reason = iota + 1 // fewer bytes than the structure needs
	ReasonTooLarge                    // header length above the configured maximum
	ReasonVersion                     // major version not 0xc, or a minor version the rules forbid
	ReasonType                        // unknown packet type
	ReasonSeq                         // sequence number parity or wrap (section 4.1)
	ReasonFlags                       // UNENCRYPTED flag does not match the configuration (section 4.5)
	ReasonLength                      // body field lengths do not add up to the body length
	ReasonBadSecret                   // as ReasonLength, on an obfuscated body: the key differs
	ReasonEnum                        // a field holds a value the RFC does not define
	ReasonText                        // a text field breaks the rules of section 3.7
	ReasonAVPair                      // an argument breaks the rules of section 6.1
	ReasonSession                     // a session_id the receiver does not expect
)

var reasonNames = [...]string{
	ReasonShort:     "short",
	ReasonTooLarge:  "too_large",
	ReasonVersion:   "version",
	ReasonType:      "type",
	ReasonSeq:       "seq",
	ReasonFlags:     "flags",
	ReasonLength:    "length",
	ReasonBadSecret: "bad_secret",
	ReasonEnum:      "enum",
	ReasonText:      "text",
	ReasonAVPair:    "av_pair",
	ReasonSession:   "session",
}

// Reasons lists every Reason, for pre-creating metric series.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonNames)-1)
	for r := range reasonNames {
		if r != 0 {
			out = append(out, Reason(r))
		}
	}
	return out
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// DecodeError is returned by every decoder and encoder in this package. It belongs to ErrBadSecret when
// Reason is ReasonBadSecret and to ErrProtocol otherwise.
type DecodeError struct {
	Reason Reason
	Field  string // the field that failed, such as "server_msg_len"
	Detail string
}

func (e *DecodeError) Error() string {
	s := "tacplus: " + e.Reason.String()
	if e.Field != "" {
		s += " in " + e.Field
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is makes a DecodeError match its class.
func (e *DecodeError) Is(target error) bool {
	if e.Reason == ReasonBadSecret {
		return target == ErrBadSecret
	}
	return target == ErrProtocol
}

func errf(r Reason, field, format string, args ...any) *DecodeError {
	d := ""
	if format != "" {
		d = fmt.Sprintf(format, args...)
	}
	return &DecodeError{Reason: r, Field: field, Detail: d}
}

// ReasonOf returns the Reason of a codec error anywhere in err's chain, or 0.
func ReasonOf(err error) Reason {
	if err == nil {
		return 0
	}
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return 0
}
