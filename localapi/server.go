package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults of Config.
const (
	// DefaultMaxRequestBytes bounds a request body; the largest honest request (an authorization with many
	// arguments) is a few KiB.
	DefaultMaxRequestBytes = 64 << 10
	// DefaultMaxConversations bounds the authentications in progress at once (each holds a goroutine).
	DefaultMaxConversations = 1024
	// DefaultConversationTimeout is how long a prompt waits for its answer before the conversation expires
	// (an idle conversation holds a slot and a goroutine; a person at a prompt answers within a minute).
	DefaultConversationTimeout = 60 * time.Second
	// DefaultConversationShare bounds the conversations one uid other than root holds at once.
	DefaultConversationShare = 64
	// DefaultConnectionShare bounds the connections one uid other than root holds open at once.
	DefaultConnectionShare = 32
	// DefaultRequestTimeout bounds how long one request waits for the backend's next step: a result, or
	// the next prompt.
	DefaultRequestTimeout = 60 * time.Second
	// DefaultReadHeaderTimeout and DefaultReadTimeout bound a slow client: a caller that never finishes its
	// headers or body loses its connection and stalls nobody else.
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	// DefaultIdleTimeout closes keep-alive connections with no request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes bounds the request line and headers; the protocol needs a few hundred bytes.
	DefaultMaxHeaderBytes = 8 << 10
	// writeMargin is added to RequestTimeout for the write deadline, so an answer the backend produced at
	// the last moment still gets written.
	writeMargin = 5 * time.Second
	// conversationIDBytes of crypto/rand make an id: 128 bits, not guessable.
	conversationIDBytes = 16
)

// Config configures a Server. Only Backend is required.
type Config struct {
	Backend Backend
	Log     zerolog.Logger   // default: no logging
	Metrics *metrics.Metrics // default: none
	// Group names the group whose members may call, besides root (by primary or supplementary group).
	// Empty: root only.
	Group string
	// AgentVersion is reported by GET /v1/status when the Backend leaves Status.Version empty.
	AgentVersion        string
	MaxRequestBytes     int64         // default DefaultMaxRequestBytes
	MaxConversations    int           // default DefaultMaxConversations
	ConversationShare   int           // per uid other than root; default DefaultConversationShare
	ConnectionShare     int           // per uid other than root; default DefaultConnectionShare
	ConversationTimeout time.Duration // default DefaultConversationTimeout
	RequestTimeout      time.Duration // default DefaultRequestTimeout
	RateLimit           RateLimit
	ReadHeaderTimeout   time.Duration // default DefaultReadHeaderTimeout
	ReadTimeout         time.Duration // default DefaultReadTimeout
	IdleTimeout         time.Duration // default DefaultIdleTimeout
	MaxHeaderBytes      int           // default DefaultMaxHeaderBytes
	// Now is the clock of the rate limiter (default time.Now).
	Now func() time.Time

	rootUID uint32 // the uid treated as root: 0, except in tests that must see a refusal while running as root
}

func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxConversations <= 0 {
		c.MaxConversations = DefaultMaxConversations
	}
	if c.ConversationShare <= 0 {
		c.ConversationShare = DefaultConversationShare
	}
	if c.ConnectionShare <= 0 {
		c.ConnectionShare = DefaultConnectionShare
	}
	set(&c.ConversationTimeout, DefaultConversationTimeout)
	set(&c.RequestTimeout, DefaultRequestTimeout)
	set(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	set(&c.ReadTimeout, DefaultReadTimeout)
	set(&c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.RateLimit = c.RateLimit.withDefaults()
	return c
}

// Server serves the local API. Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	rule    accessRule
	limiter *limiter
	http    *http.Server
	convs   *conversations
	shares  *shares

	base     context.Context // parent of every conversation; cancelled by Shutdown
	stop     context.CancelFunc
	draining atomic.Bool
	wg       sync.WaitGroup // the backend goroutines of conversations
}

// New validates cfg and builds a Server. The group is resolved now: an unknown group is an error of class
// tacplus.ErrConfig.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "local API: no backend"}
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Log, limiter: newLimiter(cfg.RateLimit, cfg.Now)}
	if cfg.Group != "" {
		gid, err := lookupGID(cfg.Group)
		if err != nil {
			return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "local API allowed group", Err: err}
		}
		s.rule = accessRule{gid: gid, hasGroup: true}
	}
	s.rule.rootUID = cfg.rootUID
	s.base, s.stop = context.WithCancel(context.Background())
	s.shares = newShares(s)
	s.convs = newConversations(cfg.MaxConversations, cfg.ConversationShare, cfg.ConversationTimeout, cfg.Now)
	s.http = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.RequestTimeout + writeMargin,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnState:         func(c net.Conn, st http.ConnState) { s.shares.connState(c, st) },
		ErrorLog:          stdlog.New(cfg.Log.With().Str("component", "local API http").Logger(), "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok {
				return context.WithValue(context.WithValue(ctx, peerKey{}, pc.p), connKey{}, pc)
			}
			return context.WithValue(ctx, peerKey{}, peerOf(c, s.rule))
		},
	}
	return s, nil
}

// Serve accepts connections on l until Shutdown. It returns nil after Shutdown, or the listener's error.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(&shareListener{Listener: l, shares: s.shares})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown drains the server. New requests get 503 at once; requests in flight and conversations in
// progress may finish until ctx is done, and a conversation may still be answered meanwhile, so a drain
// (SIGTERM) does not fail a login that was under way. At ctx's end the conversations still running are
// aborted (their prompts answered with an abort) and the remaining connections closed; Shutdown then waits
// for every goroutine it started and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.convs.close() // no new conversation from here on, so the wait below is final
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done: // every conversation ended on its own; the listener stayed open for their answers
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stop() // conversations still running: their prompts are answered with an abort
	// Requests still open are authorizations and accounting records in flight (they may run until ctx ends)
	// and, past the deadline, the requests of the conversations just aborted: those are answered promptly,
	// so they get a short grace of their own instead of having their connections cut before the answer.
	hctx := ctx
	if err != nil {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(context.Background(), abortAnswerGrace)
		defer cancel()
	}
	if herr := s.http.Shutdown(hctx); herr != nil {
		if err == nil {
			err = herr
		}
		_ = s.http.Close()
	}
	<-done // after the abort the backend returns promptly: it must honour its context
	s.shares.close()
	return err
}

// abortAnswerGrace is how long Shutdown, past its deadline, lets the requests of aborted conversations
// receive their answer before their connections are closed.
const abortAnswerGrace = time.Second

// Endpoint names, the "endpoint" label of tacagent_api_requests_total.
const (
	epAuthenticate = "authenticate"
	epConversation = "conversation"
	epAuthorize    = "authorize"
	epAccount      = "account"
	epStatus       = "status"
	epOther        = "other"
)

// TimeoutHeader carries the caller's deadline with a request: the milliseconds the caller will still wait
// for the answer, a decimal integer from 0 to MaxCallerTimeout. The Server runs the request's backend
// work under min(that, its own timeouts) from the moment it read the headers; "0" means the caller has
// already given up, and the request is refused (504 timeout) without reaching the backend. Absent: only
// the Server's own timeouts apply.
const TimeoutHeader = "Tacagent-Timeout-Ms"

// MaxCallerTimeout bounds the value of TimeoutHeader (one day); a larger value is a bad request.
const MaxCallerTimeout = 24 * time.Hour

// deadlineKey marks a request context whose deadline is the caller's (see callerDeadline).
type deadlineKey struct{}

// callerDeadline parses TimeoutHeader. ok is false when the header is absent.
func callerDeadline(h http.Header, start time.Time) (dl time.Time, ok bool, e *apiError) {
	vs := h.Values(TimeoutHeader)
	if len(vs) == 0 {
		return time.Time{}, false, nil
	}
	bad := badRequest(TimeoutHeader + " must be one whole number of milliseconds, 0 to " +
		strconv.FormatInt(MaxCallerTimeout.Milliseconds(), 10))
	if len(vs) != 1 || len(vs[0]) == 0 || len(vs[0]) > 9 {
		return time.Time{}, false, bad
	}
	var ms int64
	for _, c := range []byte(vs[0]) {
		if c < '0' || c > '9' {
			return time.Time{}, false, bad
		}
		ms = ms*10 + int64(c-'0')
	}
	if ms > MaxCallerTimeout.Milliseconds() {
		return time.Time{}, false, bad
	}
	return start.Add(time.Duration(ms) * time.Millisecond), true, nil
}

// callerGaveUp is the answer to a request whose caller's deadline passed before it could be served.
func callerGaveUp() *apiError {
	return &apiError{status: http.StatusGatewayTimeout, code: CodeStepTimeout, reason: "caller_deadline",
		msg: "the caller's deadline passed before the request could be served"}
}

// pastCallerDeadline reports whether ctx is a request context whose caller's deadline has passed.
func pastCallerDeadline(ctx context.Context) bool {
	return ctx.Value(deadlineKey{}) != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// response is what a handler produced: a status and a JSON body, and the code it is counted under.
type response struct {
	status int
	body   any
	code   string // the result ("pass", "permit", ...) or the error code
	err    *apiError
	user   string // for the log
	// undelivered, when set, runs if the answer cannot have reached its caller (the write failed): a
	// prompt nobody will answer ends its conversation now, not at its expiry.
	undelivered func()
}

func ok(body any, code string) response {
	return response{status: http.StatusOK, body: body, code: code}
}

func fail(e *apiError) response {
	return response{status: e.status, body: struct {
		Error *ErrorBody `json:"error"`
	}{e.body()}, code: e.code, err: e}
}

// serveHTTP checks the caller, routes the request and writes the answer; it is the only place that writes
// responses, counts them and logs them.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	arrived := time.Now() // the caller's deadline runs on the real clock, whatever the limiter's is
	p := peerFrom(r.Context())
	if pc, ok := r.Context().Value(connKey{}).(*peerConn); ok && !s.shares.claim(pc) {
		// Evicted while idle, as this request arrived: not served, and nothing is written (the connection
		// is closed), so the client sends it again on a new connection.
		panic(http.ErrAbortHandler)
	}
	endpoint, res := s.dispatch(w, r, p, arrived)
	if werr := s.write(w, res); werr != nil && res.undelivered != nil {
		// (A write that succeeded proves nothing either way: a caller that has just closed its end still
		// takes the bytes into the socket buffer. Such a prompt waits for its expiry: bounded.)
		res.undelivered()
	}
	if m := s.cfg.Metrics; m != nil {
		m.APIRequests.WithLabelValues(endpoint, res.code).Inc()
		if res.err != nil && res.err.reason != "" {
			m.APIRejected.WithLabelValues(res.err.reason).Inc()
		}
	}
	// A request that succeeded is logged at debug: the backend logs its decision (one info line per login,
	// authorization or record); refusals and failures of the API itself stay visible.
	ev := s.log.Debug()
	if res.status >= 400 {
		ev = s.log.Info()
	}
	if res.status >= 500 {
		ev = s.log.Warn()
	}
	if !p.known {
		ev = s.log.Warn()
	}
	ev = ev.Uint32("uid", p.caller.UID).Int("pid", p.caller.PID).Str("method", r.Method).Str("path", safePath(r.URL.Path)).
		Str("endpoint", endpoint).Int("status", res.status).Str("code", res.code).Stringer("took", s.cfg.Now().Sub(start))
	if res.user != "" {
		ev = ev.Str("user", res.user)
	}
	if res.err != nil {
		ev = ev.Str("error", res.err.msg)
	}
	ev.Msg("local API request")
}

// safePath bounds what a request's path puts in the log.
func safePath(p string) string {
	const maxLogPath = 128
	if len(p) > maxLogPath {
		return p[:maxLogPath] + "..."
	}
	return p
}

func (s *Server) write(w http.ResponseWriter, res response) error {
	b, err := json.Marshal(res.body)
	if err != nil {
		res.status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encoding the answer failed"}}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if res.err != nil {
		res.err.header(h)
	}
	w.WriteHeader(res.status)
	if _, err := w.Write(b); err != nil {
		return err
	}
	if f, ok := w.(http.Flusher); ok && res.undelivered != nil {
		f.Flush() // a prompt: its delivery is known now, not after the handler returned
	}
	return nil
}

// dispatch runs the checks every request goes through, then the endpoint. A panic in an endpoint or the
// backend becomes a 500, never a dead daemon.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, p peer, arrived time.Time) (endpoint string, res response) {
	endpoint = epOther
	defer func() {
		if v := recover(); v != nil {
			s.log.Error().Str("panic", fmt.Sprint(v)).Str("endpoint", endpoint).Msg("local API handler panicked")
			res = fail(&apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "internal error"})
		}
	}()
	if !p.known || !p.allowed {
		why := p.why
		return endpoint, fail(&apiError{status: http.StatusForbidden, code: CodeForbidden, reason: "peer",
			msg: "caller not allowed: " + why})
	}
	endpoint, handle, aerr := route(r)
	if s.draining.Load() && endpoint != epConversation {
		// Draining: nothing new starts, but a conversation under way may still be answered.
		return endpoint, fail(&apiError{status: http.StatusServiceUnavailable, code: CodeShuttingDown,
			msg: "the agent is shutting down", reason: "draining"})
	}
	if aerr != nil {
		return endpoint, fail(aerr)
	}
	dl, hasDL, derr := callerDeadline(r.Header, arrived)
	if derr != nil {
		return endpoint, fail(derr)
	}
	if hasDL {
		if !time.Now().Before(dl) {
			// The caller has given up already: nothing of this request reaches the backend.
			return endpoint, fail(callerGaveUp())
		}
		// Every wait of this request (the limiter, the backend, a conversation's next step) ends at the
		// caller's deadline: after it, the request is nowhere (docs/tls.md).
		ctx, cancel := context.WithDeadline(context.WithValue(r.Context(), deadlineKey{}, true), dl)
		defer cancel()
		r = r.WithContext(ctx)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	return endpoint, handle(s, r, p.caller)
}

type handler func(s *Server, r *http.Request, c Caller) response

// route maps a path and method to an endpoint: /v1/authenticate, /v1/conversations/{id}, /v1/authorize,
// /v1/account, /v1/status, /v1/sessions, /v1/passwd.
func route(r *http.Request) (string, handler, *apiError) {
	path := r.URL.Path
	rest, found := strings.CutPrefix(path, "/"+Version+"/")
	if !found {
		v, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if isVersion(v) {
			return epOther, nil, &apiError{status: http.StatusNotFound, code: CodeUnknownVersion, reason: "unknown_version",
				msg: fmt.Sprintf("unknown API version %s; this agent speaks %s", v, Version)}
		}
		return epOther, nil, notFound(path)
	}
	type ep struct {
		name   string
		method string
		h      handler
	}
	var e ep
	switch {
	case rest == "authenticate":
		e = ep{epAuthenticate, http.MethodPost, (*Server).authenticate}
	case rest == "authorize":
		e = ep{epAuthorize, http.MethodPost, (*Server).authorize}
	case rest == "account":
		e = ep{epAccount, http.MethodPost, (*Server).account}
	case rest == "status":
		e = ep{epStatus, http.MethodGet, (*Server).status}
	case rest == "sessions":
		e = ep{epSessions, http.MethodGet, (*Server).sessions}
	case rest == "passwd":
		e = ep{epPasswd, http.MethodGet, (*Server).passwd}
	case strings.HasPrefix(rest, "conversations/") && !strings.Contains(rest[len("conversations/"):], "/"):
		e = ep{epConversation, http.MethodPost, (*Server).answer}
	default:
		return epOther, nil, notFound(path)
	}
	if r.Method != e.method {
		return e.name, nil, methodNotAllowed(e.method)
	}
	return e.name, e.h, nil
}

func notFound(path string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeNotFound, reason: "not_found",
		msg: fmt.Sprintf("no such path %q; see docs/api.md", safePath(path))}
}

// isVersion reports whether s looks like an API version: "v" and digits.
func isVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// decode reads one JSON object into v: unknown fields, trailing data and bodies over the limit are
// refused. Its messages never quote the body, which may hold a password.
func decode(r *http.Request, v any) *apiError {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		var extra json.RawMessage
		if e2 := dec.Decode(&extra); e2 != io.EOF {
			if isTooLarge(e2) {
				err = e2
			} else {
				return badRequest("the body holds more than one JSON value")
			}
		}
	}
	if err == nil {
		return nil
	}
	if isTooLarge(err) {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge, reason: "too_large",
			msg: "request body over the limit"}
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("empty body; a JSON object is expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("truncated JSON")
	case errors.As(err, &syn):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d", syn.Offset))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("the body must be a JSON object")
		}
		return badRequest(fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type.Kind().String())))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field " + safeField(strings.TrimPrefix(err.Error(), "json: unknown field ")))
	}
	return badRequest("malformed JSON")
}

func isTooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// jsonKind names a Go kind in JSON terms.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "a number"
	case k == "string":
		return "a string"
	case k == "bool":
		return "true or false"
	case k == "slice":
		return "an array"
	}
	return "a " + k
}

// safeField bounds an unknown field name quoted back: it is the caller's text.
func safeField(q string) string {
	const maxField = 64
	var b bytes.Buffer
	for _, c := range q {
		if b.Len() >= maxField {
			b.WriteString("...")
			break
		}
		if c < 0x20 || c == 0x7f {
			c = '?'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// requestContext bounds one step: the request's own context (its connection) and RequestTimeout.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

// backendError turns a backend's error into the body's error member. A *policy.Denial explains itself.
func backendError(err error) *ErrorBody {
	code := tacplus.ClassName(err)
	if code == "unknown" {
		code = CodeInternal
	}
	eb := &ErrorBody{Code: code, Message: err.Error(), Causes: causesOf(err, code)}
	var d *policy.Denial
	if errors.As(err, &d) && d.Context != nil {
		eb.Explanation = d.Context.Explain()
	}
	return eb
}

// withCauses fills in the causes of an error body a backend built itself.
func withCauses(eb *ErrorBody, err error) *ErrorBody {
	if eb != nil && eb.Causes == nil && err != nil {
		eb.Causes = causesOf(err, eb.Code)
	}
	return eb
}

// causesOf names the taxonomy classes err matches besides code, in the taxonomy's order.
func causesOf(err error, code string) []string {
	var out []string
	for _, c := range tacplus.Classes {
		if n := tacplus.ClassName(c); n != code && errors.Is(err, c) {
			out = append(out, n)
		}
	}
	return out
}

// authenResultOf is the "result" of an authentication that ended with err.
func authenResultOf(err error) string {
	if err == nil {
		return ResultPass
	}
	r := policy.ResultOf(err)
	var d *policy.Denial
	if errors.As(err, &d) {
		r = d.Result
	}
	switch r {
	case policy.Success:
		return ResultPass
	case policy.Fail, policy.Denied:
		// Denied: the stack's controls refused (no line decided, Linux-PAM's PAM_PERM_DENIED). It is a
		// refusal like a FAIL, never "unavailable" or "error", which a PAM fallback line would skip.
		return ResultFail
	case policy.Unavailable:
		return ResultUnavailable
	}
	return ResultError
}

// readRequest decodes and validates a request body of type T.
func readRequest[T any, P interface {
	*T
	validate() *apiError
}](r *http.Request) (T, *apiError) {
	var v T
	if e := decode(r, &v); e != nil {
		return v, e
	}
	return v, P(&v).validate()
}

func (s *Server) authorize(r *http.Request, c Caller) response {
	req, e := readRequest[AuthorRequest](r)
	if e != nil {
		return fail(e)
	}
	if pastCallerDeadline(r.Context()) {
		return fail(callerGaveUp()) // the body came too slowly: nothing reaches the backend
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	res, err := s.cfg.Backend.Authorize(ctx, c, req)
	switch {
	case err == nil:
		res.Result, res.Error = ResultPermit, nil
	case errors.Is(err, tacplus.ErrDenied):
		res.Result = ResultDeny
	default:
		res.Result = ResultError
	}
	if err != nil && res.Error == nil {
		res.Error = backendError(err)
	}
	res.Error = withCauses(res.Error, err)
	if req.Start != nil && res.Result == ResultPermit {
		st := s.accountRecord(ctx, c, req.startRecord())
		res.Start = &st
	}
	out := ok(res, res.Result)
	out.user = req.User
	return out
}

// startRecord is the accounting START an authorization asks for: /v1/account's record for flags
// "start", the task_id, and the authorization's pairs followed by the request's own.
func (r AuthorRequest) startRecord() AcctRequest {
	return AcctRequest{Flags: FlagStart, User: r.User, TaskID: r.Start.TaskID, AV: append(r.Pairs(), r.Start.AV...),
		PrivLvl: r.PrivLvl, Port: r.Port, RemAddr: r.RemAddr, Ack: r.Start.Ack}
}

func (s *Server) account(r *http.Request, c Caller) response {
	req, e := readRequest[AcctRequest](r)
	if e != nil {
		return fail(e)
	}
	if pastCallerDeadline(r.Context()) {
		return fail(callerGaveUp()) // the body came too slowly: nothing reaches the backend
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	res := s.accountRecord(ctx, c, req)
	out := ok(res, res.Result)
	out.user = req.User
	return out
}

// accountRecord sends one accounting record through the backend (and so its spool) and reports how it
// went.
func (s *Server) accountRecord(ctx context.Context, c Caller, req AcctRequest) AcctResult {
	res, err := s.cfg.Backend.Account(ctx, c, req)
	if err == nil {
		if !(req.Ack == AckQueued && res.Result == ResultQueued) && !(req.Ack == AckDurable && res.Result == ResultDurable) {
			res.Result = ResultOK
		}
		res.Error = nil
	} else {
		res.Result = ResultError
		if res.Error == nil {
			res.Error = backendError(err)
		}
		res.Error = withCauses(res.Error, err)
	}
	return res
}

func (s *Server) status(r *http.Request, _ Caller) response {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	st, err := s.cfg.Backend.Status(ctx)
	if err != nil {
		return fail(&apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "status: " + err.Error()})
	}
	st.APIVersion = Version
	if st.Version == "" {
		st.Version = s.cfg.AgentVersion
	}
	if st.Servers == nil {
		st.Servers = []ServerStatus{}
	}
	st.Conversations = s.convs.live()
	return ok(st, "ok")
}
