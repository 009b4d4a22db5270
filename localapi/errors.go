package localapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// The API's own error codes: what went wrong with the request itself, before or around the backend. They
// come with a non-200 status. Errors of the taxonomy (a server said FAIL, none answered, ...) come in 200
// bodies with the class name as code (tacplus.ClassName). docs/api.md lists both.
const (
	CodeBadRequest           = "bad_request"            // 400: malformed JSON, unknown field, invalid value
	CodeForbidden            = "forbidden"              // 403: the caller is not allowed, or not the conversation's owner
	CodeNotFound             = "not_found"              // 404: no such path
	CodeUnknownVersion       = "unknown_version"        // 404: a path under a version this agent does not speak
	CodeConversationNotFound = "conversation_not_found" // 404: no such conversation
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeConversationBusy     = "conversation_busy"      // 409: an answer to this conversation is already being handled
	CodeConversationExpired  = "conversation_expired"   // 410: the prompt was not answered in time
	CodeTooLarge             = "too_large"              // 413: the body is over the limit
	CodeRateLimited          = "rate_limited"           // 429: too many failed authentications for this user
	CodeInternal             = "internal"               // 500: a bug; the daemon survived it
	CodeTooManyConversations = "too_many_conversations" // 503: the live conversation limit is reached
	CodeTooManyConnections   = "too_many_connections"   // 503: the caller's uid holds its share of connections
	CodeShuttingDown         = "shutting_down"          // 503: the agent is draining
	CodeStepTimeout          = "timeout"                // 504: the backend gave no answer in time (also a taxonomy class)
	// CodeNoAgent is the Client's own: nothing answers on the socket (the daemon is not running).
	CodeNoAgent = "no_agent"
	// CodePermissionDenied is the Client's own: the caller may not connect to the socket (EACCES).
	CodePermissionDenied = "permission_denied"
	// CodeUntrustedAgent is the Client's own: the socket is served by a uid the Client does not trust, so
	// nothing was sent.
	CodeUntrustedAgent = "untrusted_agent"
)

// Sentinels for the API codes, for errors.Is on the Client's errors.
var (
	ErrBadRequest           = errors.New("localapi: bad request")
	ErrForbidden            = errors.New("localapi: forbidden")
	ErrNotFound             = errors.New("localapi: not found")
	ErrMethodNotAllowed     = errors.New("localapi: method not allowed")
	ErrConversationBusy     = errors.New("localapi: conversation busy")
	ErrConversationExpired  = errors.New("localapi: conversation expired")
	ErrTooLarge             = errors.New("localapi: request too large")
	ErrRateLimited          = errors.New("localapi: rate limited")
	ErrInternal             = errors.New("localapi: internal error")
	ErrUnavailable          = errors.New("localapi: unavailable") // 503: too many conversations, or shutting down
	ErrUnexpectedStatus     = errors.New("localapi: unexpected response")
	ErrNoAgent              = errors.New("localapi: the agent is not running")
	ErrUntrustedAgent       = errors.New("localapi: the socket is not served by a trusted agent")
	errNoConversationPrompt = errors.New("localapi: the agent asked a question and no conversation was given")
)

// codeClasses maps every code a response can carry to what the Client's Error matches: an API sentinel,
// a taxonomy class, or both.
var codeClasses = func() map[string][]error {
	m := map[string][]error{
		CodeBadRequest:           {ErrBadRequest},
		CodeForbidden:            {ErrForbidden},
		CodeNotFound:             {ErrNotFound},
		CodeUnknownVersion:       {ErrNotFound},
		CodeConversationNotFound: {ErrNotFound},
		CodeMethodNotAllowed:     {ErrMethodNotAllowed},
		CodeConversationBusy:     {ErrConversationBusy},
		CodeConversationExpired:  {ErrConversationExpired, tacplus.ErrTimeout},
		CodeTooLarge:             {ErrTooLarge},
		CodeRateLimited:          {ErrRateLimited},
		CodeInternal:             {ErrInternal},
		CodeTooManyConversations: {ErrUnavailable},
		CodeTooManyConnections:   {ErrUnavailable},
		CodeShuttingDown:         {ErrUnavailable, tacplus.ErrAborted},
		CodeNoAgent:              {ErrNoAgent},
		CodePermissionDenied:     {ErrForbidden},
		CodeUntrustedAgent:       {ErrUntrustedAgent},
	}
	for _, c := range tacplus.Classes {
		m[tacplus.ClassName(c)] = []error{c}
	}
	return m
}()

// classByName maps the taxonomy's class names (tacplus.ClassName) to the classes: the only names a cause
// may carry.
var classByName = func() map[string]error {
	m := map[string]error{}
	for _, c := range tacplus.Classes {
		m[tacplus.ClassName(c)] = c
	}
	return m
}()

// Error is an error reported by the agent, as the Client returns it. errors.Is matches its taxonomy class
// (tacplus.ErrAuthenticationFailed, tacplus.ErrUnreachable, ...) or API sentinel (ErrRateLimited, ...).
type Error struct {
	Status      int    // the HTTP status
	Code        string // the stable code
	Message     string
	Explanation string // the whole story of a denial, when the agent gave one
	// Causes are the other taxonomy classes the agent's error matched ("protocol" under a
	// "connection_lost"); errors.Is matches them too.
	Causes     []string
	Server     string
	SessionID  uint32
	RetryAfter time.Duration // with ErrRateLimited: when to try again
}

func (e *Error) Error() string {
	s := e.Message
	if s == "" {
		s = e.Code
	}
	if e.Explanation != "" && e.Explanation != e.Message {
		s += " (" + e.Explanation + ")"
	}
	return s
}

// Unwrap exposes the classes and sentinels e's code stands for; an unknown code matches
// ErrUnexpectedStatus.
func (e *Error) Unwrap() []error {
	cs, ok := codeClasses[e.Code]
	if !ok {
		cs = []error{ErrUnexpectedStatus}
	}
	if len(e.Causes) == 0 {
		return cs
	}
	out := slices.Clone(cs)
	for _, name := range e.Causes {
		if c, ok := classByName[name]; ok {
			out = append(out, c)
		}
	}
	return out
}

// apiError is a non-200 response the Server sends.
type apiError struct {
	status     int
	code       string
	msg        string
	reason     string // the APIRejected label, "" when the request is not counted as rejected
	retryAfter time.Duration
	allow      string // with 405: the Allow header
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func (e *apiError) body() *ErrorBody { return &ErrorBody{Code: e.code, Message: e.msg} }

func (e *apiError) header(h http.Header) {
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(ceilSeconds(e.retryAfter)))
	}
	if e.allow != "" {
		h.Set("Allow", e.allow)
	}
}

// ceilSeconds rounds d up to whole seconds, as Retry-After counts them (RFC 9110 section 10.2.3).
func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func badRequest(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeBadRequest, msg: msg, reason: "bad_request"}
}

func methodNotAllowed(allow string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed, msg: "this path takes " + allow, reason: "method", allow: allow}
}
