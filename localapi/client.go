package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// Defaults of the Client.
const (
	// DefaultSocket is where the daemon listens unless configured otherwise (docs/operations.md).
	DefaultSocket = "/run/tacagent/tacagent.sock"
	// DefaultAbortTimeout bounds the abort the Client sends when its context ends mid-conversation.
	DefaultAbortTimeout = 2 * time.Second
	// maxResponseBytes bounds what the Client reads from the agent.
	maxResponseBytes = 1 << 20
	// KeptIdleTimeout is how long a Client made WithKeptConnections keeps an idle connection: well under
	// the agent's idle timeout (DefaultIdleTimeout, 60 s), so that the agent does not close it first in the
	// normal course of things.
	KeptIdleTimeout = 10 * time.Second
	// maxKeptAttempts bounds the sends of one request when kept connections turn out closed by the agent.
	maxKeptAttempts = 3
)

// Client speaks the local API over the agent's unix socket. It is safe for concurrent use.
//
// Before it sends anything on a connection, it checks who listens at the other end (SO_PEERCRED): only
// a daemon running as one of the trusted uids gets a password or a record. By default those are root and
// the Client's own uid (a daemon one runs oneself, as `tacagent demo` does); WithDaemonUIDs sets them.
type Client struct {
	socket  string
	hc      *http.Client
	trusted []uint32
	kept    int // idle connections kept between requests; 0: one request per connection
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithDaemonUIDs sets the uids a daemon may run as; a socket served by any other uid is refused with
// ErrUntrustedAgent before anything is sent.
func WithDaemonUIDs(uids ...uint32) ClientOption {
	return func(c *Client) { c.trusted = append([]uint32(nil), uids...) }
}

// WithKeptConnections keeps up to n connections open between requests (HTTP keep-alive), for a
// long-running caller that sends many requests (the audit plugin, `tacagent bench`): no connect, accept
// and peer check per request. Idle connections are closed after KeptIdleTimeout, and by Close. The agent
// may close an idle connection first (its uid's connection share, its own idle timeout, a restart); it
// never serves a request that arrives on a connection as it closes it (docs/api.md), so a request whose
// kept connection was closed before any answer is sent again, on another connection.
func WithKeptConnections(n int) ClientOption {
	return func(c *Client) { c.kept = n }
}

// NewClient returns a client of the agent listening on socketPath ("" means DefaultSocket).
func NewClient(socketPath string, opts ...ClientOption) *Client {
	if socketPath == "" {
		socketPath = DefaultSocket
	}
	c := &Client{socket: socketPath, trusted: defaultDaemonUIDs()}
	for _, o := range opts {
		o(c)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, err
			}
			if err := checkDaemon(conn, c.trusted); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return conn, nil
		},
		// By default one request per connection: a unix connect costs microseconds, and a one-shot caller
		// (the CLI) would only leave an idle connection behind.
		DisableKeepAlives:  c.kept <= 0,
		DisableCompression: true,
	}
	if c.kept > 0 {
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.IdleConnTimeout = c.kept, c.kept, KeptIdleTimeout
	}
	c.hc = &http.Client{Transport: tr}
	return c
}

// Close releases the Client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Authenticate runs one authentication, answering the agent's prompts through conv (nil: a prompt aborts
// the authentication). It returns the final result, and an error that is nil only when the result is
// ResultPass. The error is an *Error: errors.Is matches its taxonomy class (tacplus.ErrAuthenticationFailed
// for a FAIL, tacplus.ErrUnreachable when no server answered, ...) or API sentinel (ErrRateLimited, ...).
// When conv fails or ctx ends mid-conversation the Client aborts the conversation; the error is then of
// class tacplus.ErrAborted.
func (c *Client) Authenticate(ctx context.Context, req AuthenRequest, conv Conversation) (*AuthenResult, error) {
	var res AuthenResult
	if err := c.do(ctx, http.MethodPost, "/authenticate", req, &res); err != nil {
		return nil, err
	}
	for res.Result == ResultPrompt {
		if res.Prompt == nil || res.Conversation == "" {
			return nil, &Error{Code: CodeInternal, Message: "the agent sent a prompt without a question or a conversation id"}
		}
		id := res.Conversation
		var (
			answer string
			cerr   error
		)
		if conv == nil {
			cerr = errNoConversationPrompt
		} else {
			answer, cerr = conv(ctx, *res.Prompt)
		}
		if cerr == nil {
			cerr = ctx.Err()
		}
		if cerr != nil {
			c.abort(ctx, id)
			return nil, &tacplus.Error{Class: tacplus.ErrAborted, Msg: "authentication abandoned by the caller", Err: cerr}
		}
		res = AuthenResult{}
		if err := c.do(ctx, http.MethodPost, "/conversations/"+id, ConversationRequest{Answer: Secret(answer)}, &res); err != nil {
			if ctx.Err() != nil {
				c.abort(ctx, id)
			}
			return nil, err
		}
	}
	return &res, resultError(res.Error, res.Server, res.SessionID, res.Result == ResultPass)
}

// abort ends a conversation the caller gives up on, so that the agent does not wait for it.
func (c *Client) abort(ctx context.Context, id string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultAbortTimeout)
	defer cancel()
	var res AuthenResult
	_ = c.do(actx, http.MethodPost, "/conversations/"+id, ConversationRequest{Abort: true}, &res)
}

// Authorize asks whether a command or service is permitted. The error is nil only for ResultPermit; a
// denial matches tacplus.ErrDenied.
func (c *Client) Authorize(ctx context.Context, req AuthorRequest) (*AuthorResult, error) {
	var res AuthorResult
	if err := c.do(ctx, http.MethodPost, "/authorize", req, &res); err != nil {
		return nil, err
	}
	return &res, resultError(res.Error, res.Server, res.SessionID, res.Result == ResultPermit)
}

// Account sends one accounting record. The error is nil only for ResultOK, or the ResultDurable or
// ResultQueued that req.Ack asked for.
func (c *Client) Account(ctx context.Context, req AcctRequest) (*AcctResult, error) {
	var res AcctResult
	if err := c.do(ctx, http.MethodPost, "/account", req, &res); err != nil {
		return nil, err
	}
	ok := res.Result == ResultOK || res.Result == ResultDurable && req.Ack == AckDurable ||
		res.Result == ResultQueued && req.Ack == AckQueued
	return &res, resultError(res.Error, res.Server, res.SessionID, ok)
}

// Status returns the agent's servers, their connection states and the requests in flight.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// resultError is the error of a 200 answer: nil on success, else the body's error as an *Error.
func resultError(eb *ErrorBody, server string, session uint32, success bool) error {
	if success {
		return nil
	}
	if eb == nil {
		return &Error{Status: http.StatusOK, Code: CodeInternal, Message: "the agent reported no success and no error",
			Server: server, SessionID: session}
	}
	return &Error{Status: http.StatusOK, Code: eb.Code, Message: eb.Message, Explanation: eb.Explanation,
		Causes: eb.Causes, Server: server, SessionID: session}
}

// do sends one request and decodes a 200 answer into out; any other status becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("localapi: encoding the request: %w", err)
		}
		body = b
	}
	resp, sent, err := c.send(ctx, method, path, body)
	if err != nil {
		if !sent {
			return err
		}
		if ctx.Err() != nil {
			return tacplus.ContextError(ctx.Err(), "request to the agent ended by its context", nil)
		}
		return c.dialError(err)
	}
	return decodeAnswer(resp, out)
}

// send sends the request, again on another connection (at most maxKeptAttempts in all) when a kept
// connection turns out closed before any byte of an answer arrived: the agent closed it as the request
// was sent, and such a request is never served (docs/api.md). A new connection is never retried: an
// error on it may come after the agent acted.
// sent is false when the request was not sent at all (its deadline had passed).
func (c *Client) send(ctx context.Context, method, path string, body []byte) (resp *http.Response, sent bool, err error) {
	for attempt := 1; ; attempt++ {
		var reused, answered bool
		tctx := ctx
		if c.kept > 0 {
			tctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				GotConn:              func(i httptrace.GotConnInfo) { reused = i.Reused },
				GotFirstResponseByte: func() { answered = true },
			})
		}
		req, err := c.request(tctx, method, path, body)
		if err != nil {
			return nil, false, err
		}
		resp, err = c.hc.Do(req)
		if err == nil || !reused || answered || attempt >= maxKeptAttempts || ctx.Err() != nil {
			return resp, true, err
		}
	}
}

// request builds one request to the agent, with the caller's deadline in TimeoutHeader.
func (c *Client) request(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tacagent/"+Version+path, rd)
	if err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		// The agent works for this request no longer than the caller waits (TimeoutHeader). Truncated to
		// whole milliseconds, so the agent's deadline is never later than ours.
		ms := time.Until(dl).Milliseconds()
		if ms <= 0 || ctx.Err() != nil {
			cerr := ctx.Err()
			if cerr == nil {
				cerr = context.DeadlineExceeded
			}
			return nil, tacplus.ContextError(cerr, "request to the agent not sent: its deadline has passed", nil)
		}
		req.Header.Set(TimeoutHeader, strconv.FormatInt(min(ms, MaxCallerTimeout.Milliseconds()), 10))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// decodeAnswer reads resp and decodes a 200 answer into out; any other status becomes an *Error.
func decodeAnswer(resp *http.Response, out any) error {
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return &tacplus.Error{Class: tacplus.ErrConnectionLost, Msg: "reading the agent's answer", Err: err}
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			return &Error{Status: resp.StatusCode, Code: CodeInternal, Message: "the agent's answer is not valid JSON: " + err.Error()}
		}
		return nil
	}
	var eb struct {
		Error *ErrorBody `json:"error"`
	}
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
		e.Code, e.Message, e.Explanation, e.Causes = eb.Error.Code, eb.Error.Message, eb.Error.Explanation, eb.Error.Causes
	} else {
		e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), "unexpected answer from the agent: "+resp.Status
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return e
}
