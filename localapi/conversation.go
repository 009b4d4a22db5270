package localapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// An authentication through the API is a conversation: the Backend's Authenticate runs in a goroutine the
// Server owns, and each prompt it asks travels to the caller in one HTTP response; the answer comes back
// in the next request, POST /v1/conversations/{id}. Between the two, no request is open and the
// conversation waits, at most ConversationTimeout. Every conversation ends when its Backend call returns,
// which the Server forces by cancelling its context on abort, expiry, a caller gone, or Shutdown.

type convState uint8

const (
	convRunning convState = iota + 1 // the backend is working; exactly one request waits for its next step
	convWaiting                      // a prompt is out; no request is open; an answer may come
	convDone                         // the backend returned
)

type conversation struct {
	id     string
	caller Caller
	ctx    *convContext // the backend's; ended to end the conversation

	prompts chan Prompt              // backend -> the request waiting for the next step (unbuffered)
	answers chan ConversationRequest // the request carrying an answer -> backend (unbuffered)
	done    chan struct{}            // closed once res and err are set
	res     AuthenResult
	err     error
	expired atomic.Bool // the prompt went unanswered for ConversationTimeout

	mu     sync.Mutex // guards the fields below
	state  convState
	prompt Prompt // the prompt that is out, in convWaiting
	user   string // the request's user, or the answer to a "user" prompt: the rate limiter's key
	rhost  string // the request's rem_addr: the rate limiter's key, with user, for the root caller
	// tickets are the attempts this conversation reserved, one per secret it carried; run settles them
	// when the backend returns, and sets settled: a ticket reserved after that is returned at once.
	tickets []*ticket
	settled bool
	chpass  bool // a CHPASS: one attempt for the whole conversation (its later answers are new passwords)
}

// needsTicket reports whether the next secret answer is a new attempt: always in a login, only the first
// in a CHPASS (the old password is what can be guessed; the new one and its confirmation are not guesses).
func (c *conversation) needsTicket() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.chpass || len(c.tickets) == 0
}

// addTicket records t; false when the conversation already ended (t was then returned).
func (c *conversation) addTicket(t *ticket) bool {
	c.mu.Lock()
	if c.settled {
		c.mu.Unlock()
		t.settle(outcomeVoid)
		return false
	}
	c.tickets = append(c.tickets, t)
	c.mu.Unlock()
	return true
}

func (c *conversation) setState(st convState) {
	c.mu.Lock()
	c.state = st
	c.mu.Unlock()
}

func (c *conversation) currentUser() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// tombstone remembers an expired conversation for a while, so that a late answer gets 410 rather than a
// puzzling 404.
type tombstone struct {
	owner uint32
	at    time.Time
}

// conversations is the table of live conversations, bounded, plus recent tombstones.
type conversations struct {
	max   int
	share int // per non-root uid
	ttl   time.Duration
	now   func() time.Time

	mu        sync.Mutex
	closed    bool // Shutdown began: no new conversation
	byID      map[string]*conversation
	byUID     map[uint32]int // live conversations per uid
	gone      map[string]tombstone
	goneOrder []string // tombstone ids, oldest first
}

func newConversations(max, share int, ttl time.Duration, now func() time.Time) *conversations {
	return &conversations{max: max, share: share, ttl: ttl, now: now, byID: map[string]*conversation{},
		byUID: map[uint32]int{}, gone: map[string]tombstone{}}
}

// add registers c and counts its goroutine in wg, atomically with respect to close, so that Shutdown's
// wait never races an Add. It refuses when the table is full or closed, or when a uid other than root
// already holds its share.
func (t *conversations) add(c *conversation, caller Caller, rootUID uint32, wg *sync.WaitGroup) *apiError {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return &apiError{status: http.StatusServiceUnavailable, code: CodeShuttingDown, msg: "the agent is shutting down", reason: "draining"}
	case len(t.byID) >= t.max:
		return &apiError{status: http.StatusServiceUnavailable, code: CodeTooManyConversations, reason: "conversations_full",
			msg: fmt.Sprintf("%d authentications already in progress; try again later", t.max)}
	case caller.UID != rootUID && t.byUID[caller.UID] >= t.share:
		return &apiError{status: http.StatusServiceUnavailable, code: CodeTooManyConversations, reason: "conversation_share",
			msg: fmt.Sprintf("uid %d already has %d authentications in progress; finish or abort one", caller.UID, t.share)}
	}
	t.byID[c.id] = c
	t.byUID[caller.UID]++
	wg.Add(1)
	return nil
}

func (t *conversations) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// remove drops c; an expired conversation leaves a tombstone.
func (t *conversations) remove(c *conversation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[c.id]; ok {
		delete(t.byID, c.id)
		if t.byUID[c.caller.UID]--; t.byUID[c.caller.UID] <= 0 {
			delete(t.byUID, c.caller.UID)
		}
	}
	if !c.expired.Load() {
		return
	}
	now := t.now()
	t.gone[c.id] = tombstone{owner: c.caller.UID, at: now}
	t.goneOrder = append(t.goneOrder, c.id)
	// Tombstones are kept for one ttl and at most max of them, oldest dropped first.
	for len(t.goneOrder) > 0 {
		id := t.goneOrder[0]
		if len(t.goneOrder) <= t.max && now.Sub(t.gone[id].at) < t.ttl {
			break
		}
		delete(t.gone, id)
		t.goneOrder = t.goneOrder[1:]
	}
}

func (t *conversations) get(id string) (*conversation, *tombstone) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.byID[id]; ok {
		return c, nil
	}
	if ts, ok := t.gone[id]; ok && t.now().Sub(ts.at) < t.ttl {
		return nil, &ts
	}
	return nil, nil
}

func (t *conversations) live() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

func newConversationID() (string, error) {
	b := make([]byte, conversationIDBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func validConversationID(id string) bool {
	if len(id) != 2*conversationIDBytes {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// limitKey is the rate limiter's key of an attempt: (user, rhost) for the root caller, the uid of any
// other caller (its failures throttle itself, not the user it names).
func (s *Server) limitKey(c Caller, user, rhost string) limitKey {
	if c.UID == s.rule.rootUID {
		return limitKey{user: user, rhost: rhost}
	}
	return limitKey{local: true, uid: c.UID}
}

// isSecret reports whether the answer to p carries a secret: a password, or a hidden answer.
func isSecret(p Prompt) bool {
	return p.Kind == PromptPassword || (p.Kind == PromptData && !p.Echo)
}

func (s *Server) rateLimited(user, why string, after time.Duration) response {
	if m := s.cfg.Metrics; m != nil {
		m.AuthRateLimited.Inc()
	}
	msg := fmt.Sprintf("too many failed authentications; retry in %ds", ceilSeconds(after))
	if why == limitFull {
		msg = fmt.Sprintf("the agent tracks too many failing callers; retry in %ds", ceilSeconds(after))
	}
	res := fail(&apiError{status: http.StatusTooManyRequests, code: CodeRateLimited, reason: why, retryAfter: after, msg: msg})
	res.user = user
	return res
}

// authenticate starts a conversation and answers with its first step.
func (s *Server) authenticate(r *http.Request, caller Caller) response {
	req, e := readRequest[AuthenRequest](r)
	if e != nil {
		return fail(e)
	}
	key := s.limitKey(caller, req.User, req.RemAddr)
	var first *ticket
	if req.Password != "" {
		// A secret goes out with the START: its slot is taken before anything is sent.
		ctx, cancel := s.requestContext(r)
		t, why, after := s.limiter.reserve(ctx, key)
		cancel()
		if t == nil {
			if pastCallerDeadline(r.Context()) {
				return fail(callerGaveUp()) // it waited for a slot until its caller gave up
			}
			return s.rateLimited(req.User, why, after)
		}
		first = t
	} else if limited, after := s.limiter.check(key); limited {
		return s.rateLimited(req.User, limitDelayed, after)
	}
	if pastCallerDeadline(r.Context()) {
		first.settle(outcomeVoid)
		return fail(callerGaveUp())
	}
	id, err := newConversationID()
	if err != nil {
		first.settle(outcomeVoid)
		return fail(&apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "no randomness for a conversation id"})
	}
	ctx := newConvContext(s.base)
	c := &conversation{id: id, caller: caller, ctx: ctx, state: convRunning, user: req.User,
		rhost: req.RemAddr, chpass: req.Action == ActionChpass, prompts: make(chan Prompt), answers: make(chan ConversationRequest), done: make(chan struct{})}
	if first != nil {
		c.tickets = []*ticket{first}
	}
	if e := s.convs.add(c, caller, s.cfg.rootUID, &s.wg); e != nil {
		first.settle(outcomeVoid)
		ctx.release()
		return fail(e)
	}
	go s.run(c, req)
	res := s.step(r, c)
	res.user = req.User
	return res
}

// run is the goroutine of one conversation: it calls the Backend and records how it ended.
func (s *Server) run(c *conversation, req AuthenRequest) {
	defer s.wg.Done()
	defer c.ctx.release()
	res, err := s.callAuthenticate(c, req)
	c.mu.Lock()
	c.res, c.err, c.state = res, err, convDone
	tickets := c.tickets
	c.tickets, c.settled = nil, true
	c.mu.Unlock()
	// Settled before done is closed, so that a caller who sees the result and tries again finds the
	// limiter up to date.
	o := outcomeFail
	switch {
	case authenResultOf(err) == ResultPass:
		o = outcomePass
	case authenResultOf(err) == ResultUnavailable, s.base.Err() != nil:
		// No server answered, or the agent is shutting down: nothing was learned about the secret, and
		// the abort was not the caller's doing.
		o = outcomeVoid
	}
	for _, t := range tickets {
		t.settle(o)
	}
	// The slot is free before anyone learns the end: a caller who sees it may start again at once.
	s.convs.remove(c)
	close(c.done)
}

// callAuthenticate calls the Backend; a panic there ends this conversation, not the daemon.
func (s *Server) callAuthenticate(c *conversation, req AuthenRequest) (res AuthenResult, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error().Str("panic", fmt.Sprint(v)).Msg("local API backend panicked in Authenticate")
			res, err = AuthenResult{}, fmt.Errorf("backend panic")
		}
	}()
	return s.cfg.Backend.Authenticate(c.ctx, c.caller, req, s.converse(c))
}

// converse is the Conversation the Backend gets: it hands each prompt to the request waiting for the next
// step, then waits for the answer, at most ConversationTimeout.
func (s *Server) converse(c *conversation) Conversation {
	return func(ctx context.Context, p Prompt) (string, error) {
		aborted := func(msg string, cause error) error {
			return &tacplus.Error{Class: tacplus.ErrAborted, Msg: msg, Err: cause}
		}
		switch p.Kind {
		case PromptUser, PromptPassword, PromptData, PromptInfo:
		default:
			p.Kind = PromptData
		}
		select {
		case c.prompts <- p:
		case <-ctx.Done():
			return "", aborted("conversation ended", ctx.Err())
		case <-c.ctx.Done():
			return "", aborted("conversation ended", c.ctx.Err())
		}
		t := time.NewTimer(s.cfg.ConversationTimeout)
		defer t.Stop()
		select {
		case a := <-c.answers:
			if a.Abort {
				return "", aborted("the caller aborted the conversation", nil)
			}
			return string(a.Answer), nil
		case <-t.C:
			c.expired.Store(true)
			return "", &tacplus.Error{Class: tacplus.ErrAborted, Msg: "the prompt was not answered in time",
				Err: tacplus.ErrTimeout}
		case <-ctx.Done():
			return "", aborted("conversation ended", ctx.Err())
		case <-c.ctx.Done():
			return "", aborted("conversation ended", c.ctx.Err())
		}
	}
}

// step waits for the conversation's next step: a prompt to pass on, or the end.
func (s *Server) step(r *http.Request, c *conversation) response {
	t := time.NewTimer(s.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case p := <-c.prompts:
		if r.Context().Err() != nil && !pastCallerDeadline(r.Context()) {
			// The caller went away as the prompt came: nobody will see it, nor answer it.
			c.cancel()
			return fail(&apiError{status: http.StatusServiceUnavailable, code: tacplus.ClassName(tacplus.ErrAborted),
				msg: "the caller went away"})
		}
		c.mu.Lock()
		c.state, c.prompt = convWaiting, p
		user := c.user
		c.mu.Unlock()
		res := ok(AuthenResult{Result: ResultPrompt, Conversation: c.id, Prompt: &p, User: user}, ResultPrompt)
		res.undelivered = c.cancel
		return res
	case <-c.done:
		return s.finished(c)
	case <-r.Context().Done():
		if !pastCallerDeadline(r.Context()) {
			c.cancel() // nobody is left to answer
			return fail(&apiError{status: http.StatusServiceUnavailable, code: tacplus.ClassName(tacplus.ErrAborted),
				msg: "the caller went away"})
		}
		// The caller's deadline passed: the conversation ends as a timeout (no answer in time is
		// "unavailable" to the policy, as a server timeout is). The caller is still there until its deadline
		// plus its margin: give it how the backend ended (a FAIL seen before the deadline stays a FAIL), if
		// the backend honours the end promptly.
		c.ctx.end(context.DeadlineExceeded)
		g := time.NewTimer(deadlineAnswerGrace)
		defer g.Stop()
		select {
		case <-c.done:
			return s.finished(c)
		case <-g.C:
			return fail(&apiError{status: http.StatusGatewayTimeout, code: CodeStepTimeout, reason: "caller_deadline",
				msg: "the caller's deadline passed and the backend did not end in time"})
		}
	case <-t.C:
		c.cancel()
		return fail(&apiError{status: http.StatusGatewayTimeout, code: CodeStepTimeout,
			msg: fmt.Sprintf("no answer from the backend within %s", s.cfg.RequestTimeout)})
	}
}

// deadlineAnswerGrace is how long a step whose caller's deadline passed waits for the backend to end, so
// that the caller learns how the authentication ended (the agent confirms an abort within a second).
// Callers that send TimeoutHeader keep that much margin between the deadline they send and the time they
// stop reading (docs/api.md).
const deadlineAnswerGrace = 1500 * time.Millisecond

// cancel ends the conversation: the caller aborted or went away, or it expired.
func (c *conversation) cancel() { c.ctx.end(context.Canceled) }

// convContext is a conversation's backend context. It ends when the Server's base context does (Shutdown),
// when the conversation is cancelled (context.Canceled), or when a step's caller deadline passed
// (context.DeadlineExceeded: a timeout to the backend, as if the context had that deadline; a deadline
// proper cannot be used, because each step brings its own and a context's deadline cannot move). It carries
// no values and no deadline.
type convContext struct {
	done chan struct{}
	mu   sync.Mutex
	err  error
	stop func() bool // unregisters the base's AfterFunc
}

func newConvContext(base context.Context) *convContext {
	c := &convContext{done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stop = context.AfterFunc(base, func() { c.end(base.Err()) })
	return c
}

func (c *convContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *convContext) Done() <-chan struct{}       { return c.done }
func (c *convContext) Value(any) any               { return nil }

func (c *convContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// end ends the context with err, unless it has ended already.
func (c *convContext) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// release ends the context (Canceled, unless it ended already) and unregisters it from the base.
func (c *convContext) release() {
	c.end(context.Canceled)
	c.mu.Lock()
	stop := c.stop
	c.mu.Unlock()
	stop()
}

// finished is the answer for a conversation whose backend returned.
func (s *Server) finished(c *conversation) response {
	if c.expired.Load() {
		return fail(expiredError())
	}
	res := c.res
	res.Conversation, res.Prompt = "", nil
	if res.User == "" {
		// The user authenticated is the one the caller named (in the request or its GETUSER answer): the
		// agent answers a server's GETUSER with it and never lets a server switch it.
		res.User = c.currentUser()
	}
	if res.Result == "" {
		res.Result = authenResultOf(c.err)
	}
	switch {
	case c.err == nil:
		res.Error = nil
	case res.Error == nil:
		res.Error = backendError(c.err)
	default:
		res.Error = withCauses(res.Error, c.err)
	}
	return ok(res, res.Result)
}

func expiredError() *apiError {
	return &apiError{status: http.StatusGone, code: CodeConversationExpired, reason: "expired",
		msg: "the conversation expired: its prompt was not answered in time; start a new authentication"}
}

// answer carries one answer (or an abort) to a waiting conversation and answers with the next step.
func (s *Server) answer(r *http.Request, caller Caller) response {
	id := strings.TrimPrefix(r.URL.Path, "/"+Version+"/conversations/")
	var req ConversationRequest
	if e := decode(r, &req); e != nil {
		return fail(e)
	}
	notFound := fail(&apiError{status: http.StatusNotFound, code: CodeConversationNotFound, reason: "not_found",
		msg: "no such conversation (it ended, or never existed)"})
	if !validConversationID(id) {
		return notFound
	}
	c, tomb := s.convs.get(id)
	if c == nil {
		if tomb != nil && tomb.owner == caller.UID {
			return fail(expiredError())
		}
		return notFound
	}
	if c.caller.UID != caller.UID {
		// The id is a capability only in the hands of the uid that started it.
		return fail(&apiError{status: http.StatusForbidden, code: CodeForbidden, reason: "not_owner",
			msg: "this conversation belongs to another user"})
	}
	c.mu.Lock()
	st, p := c.state, c.prompt
	if st == convWaiting {
		c.state = convRunning
	}
	c.mu.Unlock()
	switch st {
	case convRunning:
		return fail(&apiError{status: http.StatusConflict, code: CodeConversationBusy, reason: "busy",
			msg: "the previous answer is still being handled"})
	case convDone:
		return s.finished(c)
	}
	user := c.currentUser()
	if p.Kind == PromptUser && !req.Abort {
		// The user is known only now: the rate limit applies before the server hears of them.
		name := string(req.Answer)
		if e := checkText("answer", name, false); e != nil {
			c.setState(convWaiting)
			return fail(e)
		}
		if limited, after := s.limiter.check(s.limitKey(caller, name, c.rhost)); limited {
			c.cancel()
			return s.rateLimited(name, limitDelayed, after)
		}
		c.mu.Lock()
		c.user = name
		c.mu.Unlock()
		user = name
	}
	if isSecret(p) && !req.Abort && c.needsTicket() {
		// Every answer that carries a secret is an attempt: its slot is taken before the server sees it.
		ctx, cancel := s.requestContext(r)
		t, why, after := s.limiter.reserve(ctx, s.limitKey(caller, user, c.rhost))
		cancel()
		if t == nil {
			c.cancel()
			if pastCallerDeadline(r.Context()) {
				return fail(callerGaveUp())
			}
			return s.rateLimited(user, why, after)
		}
		if !c.addTicket(t) {
			<-c.done // settled is set just before done is closed
			return s.finished(c)
		}
	}
	select {
	case c.answers <- req:
	case <-c.done:
	}
	res := s.step(r, c)
	res.user = user
	return res
}
