package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// Handler is one way of authenticating: a TACACS+ server group, a local credential file, a deny. It
// reports the outcome as an error from the project's taxonomy (nil for success; ResultOf maps the rest)
// and, with it, a Reply saying which server answered and which were passed over. Handlers must be safe
// for concurrent use: one Stack serves every request.
type Handler interface {
	// Kind names the kind of handler: "tacacs", "local" or "deny".
	Kind() string
	// Authenticate tries to authenticate req. It asks the user through conv when it needs to (conv may be
	// nil: then it must not need to). With req.Renew it must not answer from a cache.
	Authenticate(ctx context.Context, req Request, conv Conversation) (Reply, error)
}

// Element is one line of the stack: a named handler and its control.
type Element struct {
	Name    string // unique in the stack; used in entries, explanations and logs
	Handler Handler
	Control Control
}

// Stack is the authentication policy: an ordered list of handlers, each with a control, evaluated with
// the semantics of Linux-PAM's stack (pam.conf(5)). A Stack is immutable and safe for concurrent use.
type Stack struct {
	elems []Element
	now   func() time.Time
}

// NewStack checks elems and builds a stack. now is the stack's only clock: entries' timestamps, arrival
// times and renew decisions all come from it. Errors belong to tacplus.ErrConfig.
func NewStack(now func() time.Time, elems ...Element) (*Stack, error) {
	if now == nil {
		return nil, configErr("stack: no clock")
	}
	if len(elems) == 0 {
		return nil, configErr("stack: no handlers")
	}
	seen := map[string]int{}
	for i, e := range elems {
		switch {
		case e.Name == "":
			return nil, configErr("stack[%d]: no name", i)
		case e.Handler == nil:
			return nil, configErr("stack[%d] %q: no handler", i, e.Name)
		case !e.Control.Valid():
			return nil, configErr("stack[%d] %q: control %s is not valid", i, e.Name, e.Control)
		}
		if j, dup := seen[e.Name]; dup {
			return nil, configErr("stack[%d]: name %q already used by stack[%d]", i, e.Name, j)
		}
		seen[e.Name] = i
	}
	return &Stack{elems: append([]Element(nil), elems...), now: now}, nil
}

// Elements returns a copy of the stack's elements.
func (s *Stack) Elements() []Element { return append([]Element(nil), s.elems...) }

// String renders the stack as "name(kind) control; ...".
func (s *Stack) String() string {
	parts := make([]string, len(s.elems))
	for i, e := range s.elems {
		parts[i] = fmt.Sprintf("%s(%s) %s", e.Name, e.Handler.Kind(), e.Control)
	}
	return strings.Join(parts, "; ")
}

// Step is what became of one stack element during one request.
type Step struct {
	Name     string
	Kind     string // the handler's kind
	Control  Control
	Tried    bool      // false: the stack ended before reaching this handler
	Result   Result    // valid when Tried
	Action   Action    // the action Control took for Result
	Err      error     // the handler's error; nil on success
	Server   string    // the server that gave the final answer, if any
	Attempts []Attempt // servers passed over before it
	Time     time.Time // when the handler returned, from the stack's clock
}

// Errors returns the step's errors in order: each server passed over, then the final error.
func (s Step) Errors() []error {
	var out []error
	for _, a := range s.Attempts {
		if a.Err != nil {
			out = append(out, a.Err)
		}
	}
	if s.Err != nil {
		out = append(out, s.Err)
	}
	return out
}

// explain says what happened in this step, such as `core: server A timed out; core: server B said FAIL`.
func (s Step) explain() string {
	if !s.Tried {
		return s.Name + ": not tried"
	}
	var parts []string
	for _, a := range s.Attempts {
		if a.Err != nil {
			parts = append(parts, s.Name+": "+describe(a.Server, a.Err))
		}
	}
	switch {
	case s.Err != nil:
		parts = append(parts, s.Name+": "+describe(s.Server, s.Err))
	case s.Server != "":
		parts = append(parts, s.Name+": server "+s.Server+" said PASS")
	default:
		parts = append(parts, s.Name+": passed")
	}
	return strings.Join(parts, "; ")
}

// RequestContext is the record of one request through the stack: every handler's outcome in order, with
// every error accumulated, so that a denial can be explained completely.
type RequestContext struct {
	Request Request              // the request, with Password cleared
	Steps   []Step               // one per stack element, in stack order
	Result  Result               // the stack's outcome
	Reused  *AuthenticationEntry // set when an earlier entry satisfied the request and no handler ran
	Stopped error                // the caller's context ended the stack before it finished
}

// sawFail reports whether a handler that ran said Fail.
func (rc *RequestContext) sawFail() bool {
	for _, s := range rc.Steps {
		if s.Tried && s.Result == Fail {
			return true
		}
	}
	return false
}

// Errors returns every error accumulated, in the order they happened.
func (rc *RequestContext) Errors() []error {
	var out []error
	for _, s := range rc.Steps {
		out = append(out, s.Errors()...)
	}
	if rc.Stopped != nil {
		out = append(out, rc.Stopped)
	}
	return out
}

// Explain renders the request's story in one line: each server or handler and what it said, and the
// handlers not tried, such as "core: server A timed out; core: server B said FAIL; local: not tried".
func (rc *RequestContext) Explain() string {
	if rc.Reused != nil {
		return "satisfied by an earlier entry (" + rc.Reused.String() + ")"
	}
	parts := make([]string, 0, len(rc.Steps)+1)
	for _, s := range rc.Steps {
		parts = append(parts, s.explain())
	}
	if rc.Stopped != nil {
		parts = append(parts, "stopped: "+rc.Stopped.Error())
	}
	return strings.Join(parts, "; ")
}

// impression is the stack's state while it runs, as in Linux-PAM's dispatcher (_pam_dispatch_aux).
type impression uint8

const (
	undecided impression = iota // no handler has set the outcome yet
	positive                    // an ok/done set the outcome
	negative                    // a bad/die (or a jump past the end) set it: the stack will fail
)

// verdict is the pure decision state of a stack: it sees (result, action) pairs and nothing else. It
// mirrors Linux-PAM's dispatcher line by line (the differential test in pam/ runs it against libpam):
// status starts as Denied (PAM_MUST_FAIL_CODE), and only ok, done, bad, die, reset and a bad jump change
// it.
type verdict struct {
	imp     impression
	status  Result // the outcome so far: Denied until a line sets it
	decider int    // the step that set status, or -1
}

func newVerdict() verdict { return verdict{status: Denied, decider: -1} }

// apply folds in step i's result r under action a, with n lines left after it, and reports how many of
// them to skip and whether the stack ends here. It follows pam.conf(5) and Linux-PAM's dispatcher:
//   - ok/done: when the stack is undecided, or positive with status success, r becomes the status (and
//     the stack positive); an earlier failure, or an earlier non-success ok, is never overridden. done
//     returns at once unless the stack is negative: a sufficient success after a required failure does
//     not end the stack.
//   - bad/die: the first bad/die makes the stack negative with r as its status (later ones keep it); die
//     returns at once.
//   - ignore: no effect. reset: back to the state at the start (undecided, Denied).
//   - a jump N skips the next N lines and changes nothing; a jump past the last line makes the stack
//     negative with status Denied, even over an earlier failure ("bad jump in stack").
func (v *verdict) apply(i int, r Result, a Action, left int) (skip int, stop bool) {
	if n, ok := a.JumpLen(); ok {
		if n > left {
			v.imp, v.status, v.decider = negative, Denied, -1
			return left, false
		}
		return n, false
	}
	switch a {
	case Ignore:
	case Reset:
		*v = newVerdict()
	case OK, Done:
		if v.imp == undecided || (v.imp == positive && v.status == Success) {
			v.imp, v.status, v.decider = positive, r, i
		}
		return 0, a == Done && v.imp != negative
	default: // Bad, Die, and anything invalid (Control.Action already maps invalid to Bad)
		if v.imp != negative {
			v.imp, v.status, v.decider = negative, r, i
		}
		return 0, a == Die
	}
	return 0, false
}

// outcome is the stack's final result and the step whose error explains it (-1: none). As in Linux-PAM:
// the status, except that a success is only a success when the stack is positive (a success whose
// control said bad, or reset, is the stack's own denial: Denied). A stack that ends with no line having
// set the outcome is Denied (PAM_PERM_DENIED), never the result of some line that was ignored: a FAIL
// after an ignored "unavailable" must not come out as unavailable, which a fallback would skip.
func (v verdict) outcome() (Result, int) {
	if v.status == Success && v.imp != positive {
		return Denied, -1
	}
	if v.status == Denied {
		return Denied, -1
	}
	return v.status, v.decider
}

// Authenticate runs req through the stack. prior, which may be nil, holds entries from earlier requests:
// when one satisfies req (see Authentication.Satisfies; with req.Renew only an entry made at or after the
// request's arrival does), no handler runs. On success it returns prior's entries plus the new ones; on
// failure a *Denial. The RequestContext is returned in both cases. An invalid request returns a
// tacplus.ErrProtocol error.
func (s *Stack) Authenticate(ctx context.Context, req Request, conv Conversation, prior *Authentication) (*Authentication, *RequestContext, error) {
	if req.Arrival.IsZero() {
		req.Arrival = s.now()
	}
	rc := &RequestContext{Request: req, Steps: make([]Step, len(s.elems))}
	rc.Request.Password = ""
	for i, e := range s.elems {
		rc.Steps[i] = Step{Name: e.Name, Kind: e.Handler.Kind(), Control: e.Control}
	}
	if err := req.Validate(); err != nil {
		rc.Result = Error
		return nil, rc, err
	}
	if e, ok := prior.Satisfies(req); ok {
		rc.Result, rc.Reused = Success, &e
		return prior.Clone(), rc, nil
	}

	v := newVerdict()
	var pending []AuthenticationEntry // successes that counted, since the last reset
	for i := 0; i < len(s.elems); i++ {
		e := s.elems[i]
		if err := ctx.Err(); err != nil {
			rc.Stopped = err
			break
		}
		reply, err := e.Handler.Authenticate(ctx, req, conv)
		st := &rc.Steps[i]
		st.Tried, st.Time, st.Attempts, st.Server = true, s.now(), reply.Attempts, reply.Server
		if st.Server == "" {
			var te *tacplus.Error
			if errors.As(err, &te) {
				st.Server = te.Server
			}
		}
		if err == nil && req.Renew && !reply.Time.IsZero() && reply.Time.Before(req.Arrival) {
			err = &tacplus.Error{Class: tacplus.ErrConfig, Server: reply.Server,
				Msg: "renew demanded a fresh authentication and the handler answered from an earlier one"}
		}
		st.Err, st.Result = err, ResultOf(err)
		st.Action = e.Control.Action(st.Result)
		if st.Action == Reset {
			pending = pending[:0]
		}
		if st.Result == Success && (st.Action == OK || st.Action == Done) {
			pending = append(pending, s.entry(e, req, reply, st.Time))
		}
		skip, stop := v.apply(i, st.Result, st.Action, len(s.elems)-1-i)
		if stop {
			break
		}
		i += skip
	}

	result, at := v.outcome()
	var cause error
	if at >= 0 {
		cause = rc.Steps[at].Err
	}
	if rc.Stopped != nil && (result == Success || (v.imp == undecided && !rc.sawFail())) {
		// The caller gave up before the stack finished: a success so far is not an answer, and neither is
		// "nothing decided yet". A refusal already seen stays a refusal: a FAIL (even one a control
		// ignored) followed by the deadline must not come out as unavailable.
		result = ResultOf(rc.Stopped)
		if result == Unavailable {
			cause = &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "the request's deadline passed", Err: rc.Stopped}
		} else {
			cause = &tacplus.Error{Class: tacplus.ErrAborted, Msg: "the request was cancelled", Err: rc.Stopped}
		}
	}
	var note string
	switch {
	case result == Denied && v.decider < 0 && v.imp == undecided:
		note = "no line of the stack decided the outcome: denied"
	case result != Success && cause == nil:
		note = "denied by the stack's controls"
	}
	rc.Result = result
	if result != Success {
		return nil, rc, &Denial{Result: result, Class: classOfResult(result, cause), Cause: cause, Context: rc, note: note}
	}
	auth := prior.Clone()
	for _, e := range pending {
		auth.Add(e)
	}
	return auth, rc, nil
}

func (s *Stack) entry(e Element, req Request, reply Reply, now time.Time) AuthenticationEntry {
	if u := reply.User; u != "" && req.User == "" {
		req.User = u // ASCII login: the server asked for the name
	}
	kind, value := req.What()
	t := reply.Time
	if t.IsZero() {
		t = now
	}
	return AuthenticationEntry{
		Kind: kind, Value: value, User: req.User,
		Handler: e.Name, HandlerKind: e.Handler.Kind(), Server: reply.Server,
		AuthenType: req.Type, Time: t, Attrs: append([]Attr(nil), reply.Attrs...),
	}
}
