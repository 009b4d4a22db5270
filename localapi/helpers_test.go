package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

// testWait bounds every wait in these tests; nothing should come close to it.
const testWait = 10 * time.Second

// fakeBackend authenticates by script, keyed by the user name:
//
//	"alice" (pap): password "pw" passes with priv-lvl=15, anything else is a FAIL
//	ascii, any user: GETUSER when no user, GETPASS (no echo), then for "otp" a GETDATA "OTP: " (echo) that
//	wants "123"; password "pw" passes
//	"down": a denial by the stack, with its explanation
//	"panic": panics; "hang": waits for ctx; "info": a message prompt, then pass
//	"hangfail", "hangunreach": wait for ctx, then a FAIL, or unreachable
type fakeBackend struct {
	mu       sync.Mutex
	calls    map[string]int // Authenticate calls by request user
	callers  []Caller
	convErrs chan error    // errors a Conversation returned to the backend
	release  chan struct{} // "slow" answers wait for it
	ended    chan error    // every Authenticate's final error, in order
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{calls: map[string]int{}, convErrs: make(chan error, 4096), release: make(chan struct{}),
		ended: make(chan error, 4096)}
}

func (b *fakeBackend) count(user string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[user]
}

var errFail = &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Server: "192.0.2.1:49", SessionID: 0x1234, Msg: "bad password"}

func (b *fakeBackend) Authenticate(ctx context.Context, caller Caller, req AuthenRequest, conv Conversation) (res AuthenResult, err error) {
	b.mu.Lock()
	b.calls[req.User]++
	b.callers = append(b.callers, caller)
	b.mu.Unlock()
	defer func() { b.ended <- err }()
	ask := func(p Prompt) (string, error) {
		a, err := conv(ctx, p)
		if err != nil {
			b.convErrs <- err
			return "", &tacplus.Error{Class: tacplus.ErrAborted, Msg: "conversation ended", Err: err}
		}
		return a, nil
	}
	switch req.User {
	case "panic":
		panic("backend bug")
	case "hang":
		<-ctx.Done()
		return AuthenResult{}, &tacplus.Error{Class: tacplus.ErrAborted, Err: ctx.Err()}
	case "hangfail": // a FAIL that comes as the caller's deadline passes
		<-ctx.Done()
		return AuthenResult{User: "hangfail"}, errFail
	case "hangunreach": // the servers cut short by the caller's deadline: "unavailable" to the stack
		<-ctx.Done()
		return AuthenResult{}, &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "cut short", Err: tacplus.ContextError(ctx.Err(), "the request's context ended", nil)}
	case "down":
		return AuthenResult{}, denial()
	case "unreach":
		return AuthenResult{}, &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "every server is dead-timed"}
	case "info":
		if _, err := ask(Prompt{Message: "Welcome", Kind: PromptInfo, Echo: true}); err != nil {
			return AuthenResult{}, err
		}
		return AuthenResult{User: "info", Server: "192.0.2.1:49"}, nil
	}
	user, pw := req.User, string(req.Password)
	if req.Action == ActionChpass {
		// Old password, new password, confirmation.
		var answers []string
		for _, m := range []string{"Old password: ", "New password: ", "Again: "} {
			a, err := ask(Prompt{Message: m, Kind: PromptPassword})
			if err != nil {
				return AuthenResult{}, err
			}
			answers = append(answers, a)
		}
		if answers[0] != "pw" || answers[1] != answers[2] {
			return AuthenResult{User: user}, errFail
		}
		return AuthenResult{User: user, Server: "192.0.2.1:49"}, nil
	}
	if req.Type == TypeASCII {
		var err error
		if user == "" {
			if user, err = ask(Prompt{Message: "Username: ", Echo: true, Kind: PromptUser}); err != nil {
				return AuthenResult{}, err
			}
		}
		if pw == "" {
			if pw, err = ask(Prompt{Message: "Password: ", Echo: false, Kind: PromptPassword}); err != nil {
				return AuthenResult{}, err
			}
		}
		if user == "slow" {
			select {
			case <-b.release:
			case <-ctx.Done():
				return AuthenResult{}, &tacplus.Error{Class: tacplus.ErrAborted, Err: ctx.Err()}
			}
		}
		if user == "otp" {
			code, err := ask(Prompt{Message: "OTP: ", Echo: true, Kind: PromptData})
			if err != nil {
				return AuthenResult{}, err
			}
			if code != "123" {
				return AuthenResult{User: user}, errFail
			}
		}
	}
	if pw != "pw" {
		return AuthenResult{User: user}, errFail
	}
	return AuthenResult{User: user, Server: "192.0.2.1:49", SessionID: 0x1234, Attributes: []string{"priv-lvl=15"},
		Entries: []Entry{{Kind: "user", Value: user, User: user, Handler: "core", Server: "192.0.2.1:49", AuthenType: req.Type,
			Attributes: []string{"priv-lvl=15"}}}}, nil
}

// denial is what the stack returns when server A timed out and server B said FAIL.
func denial() error {
	timeout := &tacplus.Error{Class: tacplus.ErrTimeout, Server: "192.0.2.1:49"}
	failed := &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Server: "192.0.2.2:49"}
	return &policy.Denial{Result: policy.Fail, Class: tacplus.ErrAuthenticationFailed, Cause: failed,
		Context: &policy.RequestContext{Result: policy.Fail, Steps: []policy.Step{{Name: "core", Kind: "tacacs", Tried: true,
			Result: policy.Fail, Err: failed, Server: "192.0.2.2:49", Attempts: []policy.Attempt{{Server: "192.0.2.1:49", Err: timeout}}}}}}
}

func (b *fakeBackend) Authorize(ctx context.Context, caller Caller, req AuthorRequest) (AuthorResult, error) {
	switch req.User {
	case "panic":
		panic("backend bug")
	case "hang":
		<-ctx.Done()
		return AuthorResult{}, &tacplus.Error{Class: tacplus.ErrTimeout, Err: ctx.Err()}
	case "down":
		return AuthorResult{}, &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "every server is dead-timed"}
	case "desync":
		return AuthorResult{}, &tacplus.Error{Class: tacplus.ErrConnectionLost, Server: "192.0.2.1:49", Msg: "connection lost",
			Err: &tacplus.Error{Class: tacplus.ErrProtocol, Msg: "bad reply", Err: errors.New("seq_no 4, want 2")}}
	}
	pairs := req.Pairs()
	if len(pairs) > 1 && pairs[1] == "cmd=reload" {
		return AuthorResult{ServerMsg: "not for you", Server: "192.0.2.1:49"},
			&tacplus.Error{Class: tacplus.ErrDenied, Server: "192.0.2.1:49", Msg: "not for you"}
	}
	return AuthorResult{Args: []string{"priv-lvl=15"}, Effective: append(pairs, "priv-lvl=15"), Server: "192.0.2.1:49"}, nil
}

func (b *fakeBackend) Account(ctx context.Context, caller Caller, req AcctRequest) (AcctResult, error) {
	if req.User == "down" {
		return AcctResult{Spooled: true}, &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "spooled"}
	}
	return AcctResult{Server: "192.0.2.1:49", SessionID: 7}, nil
}

func (b *fakeBackend) Status(ctx context.Context) (Status, error) {
	return Status{Servers: []ServerStatus{{Addr: "192.0.2.1:49", State: "up", SingleConnect: true}}, Pending: 1}, nil
}

// testServer is a Server on a socket in a temporary directory, served until the test ends.
type testServer struct {
	*Server
	sock    string
	backend *fakeBackend
	metrics *metrics.Metrics
	client  *Client
	served  chan error
}

func startServer(t *testing.T, b Backend, edit func(*Config)) *testServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "localapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // reachable by the peer tests' other uid
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "tacagent.sock")
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Backend: b, Metrics: m, AgentVersion: "test"}
	if os.Getenv("LOCALAPI_TEST_LOG") != "" {
		cfg.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(sock, 0o666, "")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, sock: sock, metrics: m, client: NewClient(sock), served: make(chan error, 1)}
	ts.backend, _ = b.(*fakeBackend)
	go func() { ts.served <- s.Serve(l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// testDrain is the drain deadline of stop: conversations a test leaves open are aborted when it passes.
const testDrain = 200 * time.Millisecond

// stop shuts the server down with a short drain and checks that Serve returned cleanly. It may be called
// more than once.
func (ts *testServer) stop(t *testing.T) { ts.stopWithin(t, testDrain) }

// stopWithin shuts the server down with the given drain deadline and returns Shutdown's error, which is
// context.DeadlineExceeded when conversations were still open at the deadline (they were aborted then).
func (ts *testServer) stopWithin(t *testing.T, drain time.Duration) error {
	t.Helper()
	ts.client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := ts.Shutdown(ctx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case serr, ok := <-ts.served:
		if ok && serr != nil {
			t.Errorf("Serve: %v", serr)
		}
		if ok {
			close(ts.served)
		}
	case <-time.After(testWait):
		t.Error("Serve did not return after Shutdown")
	}
	return err
}

// httpClient is a plain HTTP client on the socket, for raw protocol checks.
func (ts *testServer) httpClient() *http.Client {
	return &http.Client{Timeout: testWait, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", ts.sock)
		}}}
}

type rawResponse struct {
	status int
	header http.Header
	body   string
	err    ErrorBody
}

// do sends one raw request and decodes the error member, if any.
func (ts *testServer) do(t *testing.T, method, path, body string) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://tacagent"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
	var eb struct {
		Error *ErrorBody `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		out.err = *eb.Error
	}
	return out
}

// post sends v as JSON and decodes a 200 answer into out.
func (ts *testServer) post(t *testing.T, path string, v, out any) rawResponse {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	r := ts.do(t, http.MethodPost, path, string(b))
	if r.status == http.StatusOK && out != nil {
		if err := json.NewDecoder(bytes.NewReader([]byte(r.body))).Decode(out); err != nil {
			t.Fatalf("decoding %q: %v", r.body, err)
		}
	}
	return r
}

// waitFor waits for a value on ch, failing the test after testWait.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}
