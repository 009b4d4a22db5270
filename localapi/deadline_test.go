package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// callRecord is what deadlineBackend saw of one backend call.
type callRecord struct {
	kind     string
	user     string
	started  time.Time // when the backend was entered
	deadline time.Time // the context's deadline
	hasDL    bool
	ended    time.Time // when the context ended (zero: it did not end while the call ran)
	endErr   error     // the context's error then
}

// deadlineBackend is the fake backend plus a record of every call: when it started and the deadline its
// context carried. User "hang" waits for its context in every call, and records when it ended.
type deadlineBackend struct {
	*fakeBackend
	mu    sync.Mutex
	calls []callRecord
}

func newDeadlineBackend() *deadlineBackend { return &deadlineBackend{fakeBackend: newFakeBackend()} }

func (b *deadlineBackend) record(ctx context.Context, kind, user string) func() {
	r := callRecord{kind: kind, user: user, started: time.Now()}
	r.deadline, r.hasDL = ctx.Deadline()
	b.mu.Lock()
	i := len(b.calls)
	b.calls = append(b.calls, r)
	b.mu.Unlock()
	return func() {
		if ctx.Err() == nil {
			return
		}
		b.mu.Lock()
		b.calls[i].ended, b.calls[i].endErr = time.Now(), ctx.Err()
		b.mu.Unlock()
	}
}

func (b *deadlineBackend) records() []callRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]callRecord(nil), b.calls...)
}

func (b *deadlineBackend) Authenticate(ctx context.Context, c Caller, req AuthenRequest, conv Conversation) (AuthenResult, error) {
	defer b.record(ctx, "authenticate", req.User)()
	return b.fakeBackend.Authenticate(ctx, c, req, conv)
}

func (b *deadlineBackend) Authorize(ctx context.Context, c Caller, req AuthorRequest) (AuthorResult, error) {
	defer b.record(ctx, "authorize", req.User)()
	return b.fakeBackend.Authorize(ctx, c, req)
}

func (b *deadlineBackend) Account(ctx context.Context, c Caller, req AcctRequest) (AcctResult, error) {
	defer b.record(ctx, "account", req.User)()
	if req.User == "hang" {
		<-ctx.Done()
		return AcctResult{}, tacplus.ContextError(ctx.Err(), "hang", nil)
	}
	return b.fakeBackend.Account(ctx, c, req)
}

// rawWithTimeout sends one request with TimeoutHeader set to ms ("" = no header) and returns the status
// and the error body.
func (ts *testServer) rawWithTimeout(t *testing.T, method, path, body, ms string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, "http://tacagent"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ms != "" {
		req.Header.Set(TimeoutHeader, ms)
	}
	resp, err := ts.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
	var eb struct {
		Error *ErrorBody `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		out.err = *eb.Error
	}
	return out
}

// TestCallerDeadlineHeader: the server runs the backend under the deadline the header gives, counted from
// when it read the request; a deadline already passed ("0") never reaches the backend; malformed values
// are refused.
func TestCallerDeadlineHeader(t *testing.T) {
	b := newDeadlineBackend()
	ts := startServer(t, b, nil)
	const acct = `{"user":"alice","flags":"start","task_id":"1"}`

	before := time.Now()
	r := ts.rawWithTimeout(t, http.MethodPost, "/v1/account", acct, "700")
	if r.status != http.StatusOK {
		t.Fatalf("account with a 700 ms deadline: %d %s", r.status, r.body)
	}
	recs := b.records()
	if len(recs) != 1 || !recs[0].hasDL {
		t.Fatalf("the backend call carried no deadline: %+v", recs)
	}
	// The deadline is 700 ms from the moment the server read the request: after before+700ms, and no later
	// than the backend's entry + 700 ms.
	if dl := recs[0].deadline; dl.Before(before.Add(700*time.Millisecond)) || dl.After(recs[0].started.Add(700*time.Millisecond)) {
		t.Errorf("backend deadline %v not within [%v, %v]", dl, before.Add(700*time.Millisecond), recs[0].started.Add(700*time.Millisecond))
	}

	// Without the header only the server's own request timeout applies.
	ts.rawWithTimeout(t, http.MethodPost, "/v1/account", acct, "")
	recs = b.records()
	if len(recs) != 2 || !recs[1].hasDL || recs[1].deadline.Before(recs[1].started.Add(DefaultRequestTimeout-5*time.Second)) {
		t.Errorf("without the header the backend deadline should be the request timeout: %+v", recs[len(recs)-1])
	}
	// A caller deadline beyond the server's own timeout does not extend it.
	ts.rawWithTimeout(t, http.MethodPost, "/v1/account", acct, "86400000")
	recs = b.records()
	if len(recs) != 3 || recs[2].deadline.After(recs[2].started.Add(DefaultRequestTimeout)) {
		t.Errorf("a day's deadline must be cut to the request timeout: %+v", recs[len(recs)-1])
	}

	// Already given up: 504, nothing reaches the backend, on every endpoint.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/account", acct},
		{http.MethodPost, "/v1/authorize", `{"user":"alice","cmd":"show"}`},
		{http.MethodPost, "/v1/authenticate", `{"user":"alice","type":"pap","password":"pw"}`},
		{http.MethodGet, "/v1/status", ""},
	} {
		n := len(b.records())
		r := ts.rawWithTimeout(t, c.method, c.path, c.body, "0")
		if r.status != http.StatusGatewayTimeout || r.err.Code != CodeStepTimeout {
			t.Errorf("%s with deadline 0: %d %q, want 504 timeout", c.path, r.status, r.err.Code)
		}
		if got := len(b.records()); got != n {
			t.Errorf("%s with deadline 0 reached the backend", c.path)
		}
	}
	if b.count("alice") != 0 {
		t.Errorf("authenticate with deadline 0 reached the backend %d times", b.count("alice"))
	}
	for _, bad := range []string{"-1", "+5", "1.5", "abc", "0x10", "86400001", "1000000000", "5 5", "5s"} {
		r := ts.rawWithTimeout(t, http.MethodPost, "/v1/account", acct, bad)
		if r.status != http.StatusBadRequest {
			t.Errorf("header %q: %d, want 400", bad, r.status)
		}
	}
	if got := len(b.records()); got != 3 {
		t.Errorf("%d backend calls, want 3 (refused requests reached it)", got)
	}
}

// TestClientSendsDeadline: the Go client sends its context's deadline; the backend's deadline is never
// later than the caller's by more than the request's own transit (from the call to the backend's entry).
// A context already past its deadline sends nothing. (An authentication's steps are bounded by
// cancellation instead: TestDeadlineEndsConversationStep, TestClientDeadlineEndsAuthentication.)
func TestClientSendsDeadline(t *testing.T) {
	b := newDeadlineBackend()
	ts := startServer(t, b, nil)
	for _, call := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"account", func(ctx context.Context) error {
			_, err := ts.client.Account(ctx, AcctRequest{User: "alice", Flags: FlagStart, TaskID: "1"})
			return err
		}},
		{"authorize", func(ctx context.Context) error {
			_, err := ts.client.Authorize(ctx, AuthorRequest{User: "alice", Cmd: "show"})
			return err
		}},
	} {
		before := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		dl, _ := ctx.Deadline()
		err := call.do(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", call.name, err)
		}
		recs := b.records()
		r := recs[len(recs)-1]
		if r.kind != call.name || !r.hasDL {
			t.Fatalf("%s: backend record %+v", call.name, r)
		}
		if late := r.deadline.Sub(dl); late > r.started.Sub(before) {
			t.Errorf("%s: the backend's deadline is %v after the caller's, more than the transit %v", call.name, late, r.started.Sub(before))
		}
		if r.deadline.After(r.started.Add(3 * time.Second)) {
			t.Errorf("%s: backend deadline %v beyond 3 s from its entry", call.name, r.deadline.Sub(r.started))
		}
	}

	n := len(b.records())
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := ts.client.Account(ctx, AcctRequest{User: "alice", Flags: FlagStart, TaskID: "1"})
	if !errors.Is(err, tacplus.ErrTimeout) {
		t.Errorf("expired context: %v, want a timeout", err)
	}
	if len(b.records()) != n {
		t.Error("a request whose context had expired reached the backend")
	}
}

// TestDeadlinePassesInQueue: requests that wait inside the server (for a rate limiter slot, or for a body
// that comes slowly) until their caller's deadline passes never reach the backend, and every backend call
// started before its caller's deadline.
func TestDeadlinePassesInQueue(t *testing.T) {
	b := newDeadlineBackend()
	ts := startServer(t, b, func(c *Config) { c.RateLimit = RateLimit{MaxFailures: 1} })

	// One attempt of "slow" holds the only slot of its key until released.
	first := make(chan rawResponse, 1)
	go func() {
		first <- ts.rawWithTimeout(t, http.MethodPost, "/v1/authenticate", `{"user":"slow","password":"pw"}`, "")
	}()
	deadline := time.Now().Add(testWait)
	for b.count("slow") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never reached the backend")
		}
		time.Sleep(time.Millisecond)
	}
	// Five more wait for the slot with a 150 ms deadline: each is refused at its deadline, none reaches
	// the backend.
	var wg sync.WaitGroup
	results := make([]rawResponse, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = ts.rawWithTimeout(t, http.MethodPost, "/v1/authenticate", `{"user":"slow","password":"pw"}`, "150")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusGatewayTimeout || r.err.Code != CodeStepTimeout {
			t.Errorf("queued attempt %d: %d %q, want 504 timeout", i, r.status, r.err.Code)
		}
	}
	if n := b.count("slow"); n != 1 {
		t.Errorf("%d attempts reached the backend, want 1", n)
	}
	close(b.release)
	if r := waitFor(t, first, "the first attempt"); r.status != http.StatusOK {
		t.Errorf("first attempt: %d %s", r.status, r.body)
	}

	// A body that arrives after the deadline: the request is refused, the backend never sees it.
	conn, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"user":"late","flags":"start","task_id":"1"}`
	fmt.Fprintf(conn, "POST /v1/account HTTP/1.1\r\nHost: tacagent\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n%s: 100\r\nConnection: close\r\n\r\n", len(body), TimeoutHeader)
	// The caller is slow on purpose: its body comes well after its 100 ms deadline (the server counts
	// from the headers, written above).
	time.Sleep(300 * time.Millisecond)
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(testWait))
	ans, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ans), " 504 ") || !strings.Contains(string(ans), `"timeout"`) {
		t.Errorf("late body: %q, want 504 timeout", ans)
	}
	for _, r := range b.records() {
		if r.user == "late" {
			t.Errorf("the late request reached the backend: %+v", r)
		}
	}
}

// TestDeadlineEndsConversationStep: an authentication whose backend is still working at its caller's
// deadline is cancelled then (a timeout to the backend), and the caller gets how the backend ended: a FAIL
// it saw stays a FAIL; servers the deadline cut short are "unavailable", as a server timeout is (a PAM
// fallback line may then run: no server decided); the backend's own abort is an error.
func TestDeadlineEndsConversationStep(t *testing.T) {
	for _, tc := range []struct {
		user   string
		status int
		want   string
	}{
		{"hang", http.StatusOK, `"result":"error"`},
		{"hangunreach", http.StatusOK, `"result":"unavailable"`},
		{"hangfail", http.StatusOK, `"result":"fail"`},
	} {
		t.Run(tc.user, func(t *testing.T) {
			b := newDeadlineBackend()
			ts := startServer(t, b, nil)
			start := time.Now()
			r := ts.rawWithTimeout(t, http.MethodPost, "/v1/authenticate", `{"user":"`+tc.user+`","type":"pap","password":"x"}`, "200")
			took := time.Since(start)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Errorf("backend %s past the deadline: %d %s, want %d with %s", tc.user, r.status, r.body, tc.status, tc.want)
			}
			recs := b.records()
			if len(recs) != 1 || recs[0].ended.IsZero() {
				t.Fatalf("the backend's context did not end: %+v", recs)
			}
			if !errors.Is(recs[0].endErr, context.DeadlineExceeded) {
				t.Errorf("the backend's context ended with %v, want context.DeadlineExceeded (a timeout, not a give-up)", recs[0].endErr)
			}
			if recs[0].ended.Before(start.Add(200 * time.Millisecond)) {
				t.Errorf("the backend's context ended %v after the request, before its 200 ms deadline", recs[0].ended.Sub(start))
			}
			t.Logf("answered after %v; backend context ended %v after the request", took, recs[0].ended.Sub(start))
			if err := waitFor(t, b.ended, "the backend's end"); err == nil {
				t.Errorf("backend ended without an error")
			}
		})
	}
}

// TestClientDeadlineEndsAuthentication: through the Go client, an authentication whose backend is still
// working at the caller's deadline has its backend context ended then, not when the connection closes.
func TestClientDeadlineEndsAuthentication(t *testing.T) {
	b := newDeadlineBackend()
	ts := startServer(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	dl, _ := ctx.Deadline()
	_, err := ts.client.Authenticate(ctx, AuthenRequest{User: "hang", Type: TypePAP, Password: "x"}, nil)
	if !errors.Is(err, tacplus.ErrTimeout) && !errors.Is(err, tacplus.ErrAborted) {
		t.Errorf("Authenticate past its deadline: %v", err)
	}
	if err := waitFor(t, b.ended, "the backend's end"); !errors.Is(err, tacplus.ErrAborted) {
		t.Errorf("backend ended with %v", err)
	}
	recs := b.records()
	if len(recs) != 1 || recs[0].ended.IsZero() {
		t.Fatalf("the backend's context did not end: %+v", recs)
	}
	t.Logf("backend context ended %v after the caller's deadline", recs[0].ended.Sub(dl))
}
