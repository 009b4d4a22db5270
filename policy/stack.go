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

// impression is the stack's state while it runs, as in Linux-PAM's dispatcher.
type impression uint8

const (
	undecided impression = iota // no handler has set the outcome yet
	positive                    // an ok/done set the outcome
	negative                    // a bad/die set it: the stack will fail
)

// verdict is the pure decision state of a stack: it sees (result, action) pairs and nothing else.
type verdict struct {
	imp       impression
	status    Result // the outcome so far, meaningful when imp != undecided
	decider   int    // the step that set status, or -1
	firstMiss int    // the first step since the last reset whose result was not Success, or -1
}

func newVerdict() verdict { return verdict{decider: -1, firstMiss: -1} }

// apply folds in step i's result r under action a, and reports whether the stack ends here. It follows
// pam.conf(5) and Linux-PAM's dispatcher:
//   - ok/done: "if the former state of the stack would lead to a return of PAM_SUCCESS, the module's
//     return code will override this value"; an earlier failure is never overridden. done returns at
//     once, but only when the stack's outcome is then positive: a sufficient success after a required
//     failure does not end the stack.
//   - bad/die: the stack fails, and "if this module is the first in the stack to fail, its status value
//     will be used for that of the whole stack"; die returns at once.
//   - ignore: no effect. reset: "clear all memory of the state of the module stack and start again with
//     the next stacked module".
func (v *verdict) apply(i int, r Result, a Action) (stop bool) {
	if r != Success && v.firstMiss < 0 {
		v.firstMiss = i
	}
	switch a {
	case Ignore:
	case Reset:
		*v = newVerdict()
	case OK, Done:
		if v.imp == undecided || (v.imp == positive && v.status == Success) {
			v.imp, v.status, v.decider = positive, r, i
		}
		return a == Done && v.imp == positive
	default: // Bad, Die, and anything invalid (Control.Action already maps invalid to Bad)
		if v.imp != negative {
			v.imp, v.status, v.decider = negative, r, i
		}
		return a == Die
	}
	return false
}

// outcome is the stack's final result and the step whose error explains it (-1: none). A stack that ends
// with no handler having set the outcome fails, as Linux-PAM's does (PAM_MUST_FAIL_CODE); the result is
// then that of the first handler that did not succeed, so that "every server was unreachable" is
// reported as Unavailable rather than as a bare denial, or Error when every handler succeeded but none
// counted (a misconfigured stack).
func (v verdict) outcome() (Result, int) {
	switch {
	case v.imp == positive && v.status == Success:
		return Success, v.decider
	case v.imp != undecided && v.status != Success:
		return v.status, v.decider
	case v.imp == negative: // a success whose control said bad: the stack's own denial
		return Fail, -1
	case v.firstMiss >= 0:
		return 0, v.firstMiss // the caller takes that step's result
	}
	return Error, -1
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
	for i, e := range s.elems {
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
		if v.apply(i, st.Result, st.Action) {
			break
		}
	}

	result, at := v.outcome()
	var cause error
	if at >= 0 {
		cause = rc.Steps[at].Err
		if result == 0 {
			result = rc.Steps[at].Result
		}
	}
	if rc.Stopped != nil && (result == Success || v.imp != negative) {
		// The caller gave up before the stack finished: whatever was decided so far is not an answer.
		result = ResultOf(rc.Stopped)
		if result == Unavailable {
			cause = &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "the request's deadline passed", Err: rc.Stopped}
		} else {
			cause = &tacplus.Error{Class: tacplus.ErrAborted, Msg: "the request was cancelled", Err: rc.Stopped}
		}
	}
	var note string
	switch {
	case result == Error && cause == nil:
		note = "no line of the stack decided the outcome: every control ignored its result"
		cause = configErr("%s", note)
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
