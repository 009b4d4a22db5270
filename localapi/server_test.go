package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBadInput(t *testing.T) {
	ts := startServer(t, newFakeBackend(), func(c *Config) { c.MaxRequestBytes = 1024 })
	big := `{"user":"alice","password":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		msgHas                   string
		secret                   string // must not appear in the answer
	}{
		{"malformed json", "POST", "/v1/authenticate", `{"user":"alice","password":"hunter2`, 400, CodeBadRequest, "truncated", "hunter2"},
		{"control char in string", "POST", "/v1/authenticate", "{\"password\":\"hun\x01ter2\"}", 400, CodeBadRequest, "malformed JSON at byte", "hun"},
		{"garbage", "POST", "/v1/authenticate", `password=hunter2`, 400, CodeBadRequest, "malformed JSON", "hunter2"},
		{"unknown field", "POST", "/v1/authenticate", `{"user":"alice","bogus":1}`, 400, CodeBadRequest, `unknown field "bogus"`, ""},
		{"wrong type", "POST", "/v1/authenticate", `{"user":"alice","priv_lvl":"15"}`, 400, CodeBadRequest, `"priv_lvl" must be a number`, ""},
		{"not an object", "POST", "/v1/authorize", `["alice"]`, 400, CodeBadRequest, "JSON object", ""},
		{"empty body", "POST", "/v1/account", ``, 400, CodeBadRequest, "empty body", ""},
		{"two values", "POST", "/v1/authenticate", `{"user":"alice"}{"user":"bob"}`, 400, CodeBadRequest, "more than one", ""},
		{"too large", "POST", "/v1/authenticate", big, 413, CodeTooLarge, "over the limit", "xxxxxxxx"},
		{"too large after a value", "POST", "/v1/authenticate", `{"user":"a"}` + strings.Repeat(" ", 2000), 413, CodeTooLarge, "", ""},
		{"unknown type", "POST", "/v1/authenticate", `{"user":"alice","type":"kerberos"}`, 400, CodeBadRequest, "type must be", ""},
		{"pap without user", "POST", "/v1/authenticate", `{"type":"pap","password":"pw"}`, 400, CodeBadRequest, "user is required", "pw\""},
		{"priv_lvl out of range", "POST", "/v1/authorize", `{"user":"alice","priv_lvl":16}`, 400, CodeBadRequest, "priv_lvl", ""},
		{"control char in user", "POST", "/v1/authorize", `{"user":"al\nice"}`, 400, CodeBadRequest, "control character", ""},
		{"av and cmd", "POST", "/v1/authorize", `{"user":"alice","cmd":"show","av":["service=shell"]}`, 400, CodeBadRequest, "either av", ""},
		{"reserved attribute in an accounting record", "POST", "/v1/account", `{"user":"alice","flags":"start","av":["service=shell","caller_uid=0"]}`, 400, CodeBadRequest, `av[1]: attribute "caller_uid" is reserved`, ""},
		{"reserved optional attribute, other case", "POST", "/v1/account", `{"user":"alice","flags":"stop","av":["Caller_PID*1"]}`, 400, CodeBadRequest, "is reserved", ""},
		{"reserved attribute in an authorization", "POST", "/v1/authorize", `{"user":"alice","av":["service=shell","caller_gid=0"]}`, 400, CodeBadRequest, "is reserved", ""},
		{"bad flags", "POST", "/v1/account", `{"user":"alice","flags":"begin"}`, 400, CodeBadRequest, "flags must be", ""},
		{"unknown version", "GET", "/v2/status", ``, 404, CodeUnknownVersion, "unknown API version v2; this agent speaks v1", ""},
		{"unknown path", "GET", "/v1/nope", ``, 404, CodeNotFound, "no such path", ""},
		{"no version", "GET", "/status", ``, 404, CodeNotFound, "", ""},
		{"wrong method", "GET", "/v1/authenticate", ``, 405, CodeMethodNotAllowed, "POST", ""},
		{"wrong method on status", "POST", "/v1/status", `{}`, 405, CodeMethodNotAllowed, "GET", ""},
		{"bad conversation id", "POST", "/v1/conversations/xyz", `{"answer":"x"}`, 404, CodeConversationNotFound, "", ""},
		{"unknown conversation", "POST", "/v1/conversations/" + strings.Repeat("ab", 16), `{"answer":"x"}`, 404, CodeConversationNotFound, "", ""},
		{"conversation subpath", "POST", "/v1/conversations/a/b", `{}`, 404, CodeNotFound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, tt.method, tt.path, tt.body)
			if r.status != tt.status || r.err.Code != tt.code || !strings.Contains(r.err.Message, tt.msgHas) {
				t.Fatalf("got %d %+v, want %d %s containing %q", r.status, r.err, tt.status, tt.code, tt.msgHas)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.secret != "" && strings.Contains(r.body, tt.secret) {
				t.Errorf("the answer echoes the request body")
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
	if n := ts.backend.count("alice"); n != 0 {
		t.Errorf("bad requests reached the backend %d times", n)
	}
	if got := testutil.ToFloat64(ts.metrics.APIRejected.WithLabelValues("bad_request")); got < 10 {
		t.Errorf("api_rejected_total{reason=bad_request} = %v", got)
	}
	if got := testutil.ToFloat64(ts.metrics.APIRequests.WithLabelValues(epOther, CodeUnknownVersion)); got != 1 {
		t.Errorf("api_requests_total{other,unknown_version} = %v", got)
	}
}

func TestEndpoints(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil)
	tests := []struct {
		name   string
		path   string
		body   any
		result string
		code   string
		check  func(t *testing.T, body map[string]any)
	}{
		{"pap pass", "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, ResultPass, "", func(t *testing.T, b map[string]any) {
			if b["attributes"].([]any)[0] != "priv-lvl=15" || b["server"] != "192.0.2.1:49" || b["session_id"].(float64) != 0x1234 {
				t.Errorf("body %v", b)
			}
			if len(b["entries"].([]any)) != 1 {
				t.Errorf("entries %v", b["entries"])
			}
		}},
		{"pap fail", "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "nope"}, ResultFail, "authentication_failed", nil},
		{"denial explained", "/v1/authenticate", AuthenRequest{User: "down", Type: TypePAP, Password: "pw"}, ResultFail, "authentication_failed",
			func(t *testing.T, b map[string]any) {
				want := "core: server 192.0.2.1:49 timed out; core: server 192.0.2.2:49 said FAIL"
				if x := b["error"].(map[string]any)["explanation"]; x != want {
					t.Errorf("explanation %q, want %q", x, want)
				}
			}},
		{"backend panic", "/v1/authenticate", AuthenRequest{User: "panic", Type: TypePAP, Password: "pw"}, ResultError, CodeInternal, nil},
		{"permit", "/v1/authorize", AuthorRequest{User: "alice", Cmd: "show", Args: []string{"version"}}, ResultPermit, "", func(t *testing.T, b map[string]any) {
			eff := fmt.Sprint(b["effective"])
			if eff != "[service=shell cmd=show cmd-arg=version priv-lvl=15]" {
				t.Errorf("effective %s", eff)
			}
		}},
		{"deny", "/v1/authorize", AuthorRequest{User: "alice", AV: []string{"service=shell", "cmd=reload"}}, ResultDeny, "denied", func(t *testing.T, b map[string]any) {
			if b["server_msg"] != "not for you" {
				t.Errorf("server_msg %v", b["server_msg"])
			}
		}},
		{"author unreachable", "/v1/authorize", AuthorRequest{User: "down", Cmd: "show"}, ResultError, "unreachable", nil},
		{"account", "/v1/account", AcctRequest{Flags: FlagStart, User: "alice", TaskID: "42", AV: []string{"service=shell"}}, ResultOK, "", nil},
		{"account spooled", "/v1/account", AcctRequest{Flags: FlagStop, User: "down", TaskID: "42"}, ResultError, "unreachable", func(t *testing.T, b map[string]any) {
			if b["spooled"] != true {
				t.Errorf("spooled %v", b["spooled"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body map[string]any
			r := ts.post(t, tt.path, tt.body, &body)
			if r.status != 200 || body["result"] != tt.result {
				t.Fatalf("got %d %s, want result %s", r.status, r.body, tt.result)
			}
			code := ""
			if e, ok := body["error"].(map[string]any); ok {
				code, _ = e["code"].(string)
			}
			if code != tt.code {
				t.Errorf("error code %q, want %q (%s)", code, tt.code, r.body)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
	// A panic in the backend is a 500 for that request; the daemon and the next request are fine.
	if r := ts.post(t, "/v1/authorize", AuthorRequest{User: "panic"}, nil); r.status != http.StatusInternalServerError || r.err.Code != CodeInternal {
		t.Fatalf("authorize panic: %d %s", r.status, r.body)
	}
	r := ts.do(t, http.MethodGet, "/v1/status", "")
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.status != 200 {
		t.Fatalf("status: %d %s %v", r.status, r.body, err)
	}
	if st.APIVersion != "v1" || st.Version != "test" || len(st.Servers) != 1 || st.Servers[0].State != "up" || st.Pending != 1 {
		t.Errorf("status %+v", st)
	}
	if got := testutil.ToFloat64(ts.metrics.APIRequests.WithLabelValues(epAuthorize, ResultPermit)); got != 1 {
		t.Errorf("api_requests_total{authorize,permit} = %v", got)
	}
	if got := testutil.ToFloat64(ts.metrics.APIRequests.WithLabelValues(epAuthenticate, ResultPass)); got != 1 {
		t.Errorf("api_requests_total{authenticate,pass} = %v", got)
	}
}

// TestCallerRecorded: the backend gets the caller's uid and pid from SO_PEERCRED.
func TestCallerRecorded(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil)
	var res AuthenResult
	ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, &res)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.callers) != 1 || b.callers[0].PID == 0 || b.callers[0].UID != 0 {
		// The test runs as root; the pid is this process.
		t.Fatalf("callers %+v", b.callers)
	}
}

func TestDraining(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil)
	ts.draining.Store(true) // what Shutdown does first
	r := ts.do(t, http.MethodGet, "/v1/status", "")
	if r.status != http.StatusServiceUnavailable || r.err.Code != CodeShuttingDown {
		t.Fatalf("got %d %+v", r.status, r.err)
	}
	ts.draining.Store(false)
}

// TestSlowClients: a caller that never finishes its headers, or its body, loses its connection after the
// read timeouts, and nobody else waits for it meanwhile.
func TestSlowClients(t *testing.T) {
	ts := startServer(t, newFakeBackend(), func(c *Config) {
		c.ReadHeaderTimeout = 200 * time.Millisecond
		c.ReadTimeout = 300 * time.Millisecond
	})
	partial := []string{
		"POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Len",                           // headers never end
		"POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user\":", // body never ends
	}
	var conns []net.Conn
	for i := 0; i < 50; i++ {
		c, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, partial[i%2]); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Other callers are served while the slow ones hang.
	for i := 0; i < 5; i++ {
		if r := ts.do(t, http.MethodGet, "/v1/status", ""); r.status != 200 {
			t.Fatalf("status while slow clients hang: %d", r.status)
		}
	}
	// Every slow connection is closed by the server (an answer, then EOF), well before our own deadline.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(testWait))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("conn %d: the server did not close it: %v", i, err)
		}
		if i%2 == 1 && !strings.Contains(string(b), " 400 ") {
			t.Errorf("conn %d (slow body): answer %q, want a 400", i, b)
		}
	}
}

// TestConcurrentLoad: thousands of concurrent requests, authentications with two steps among them, are
// all answered; goleak in TestMain proves that nothing is left behind.
func TestConcurrentLoad(t *testing.T) {
	const (
		n = 2000
		// loadWait bounds each request: every request is in the server at once, so the last answered waits
		// for nearly all the others, which under -race on a loaded CI machine takes several seconds.
		loadWait = 2 * time.Minute
	)
	ts := startServer(t, newFakeBackend(), nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), loadWait)
			defer cancel()
			var err error
			switch i % 4 {
			case 0:
				_, err = ts.client.Authenticate(ctx, AuthenRequest{User: fmt.Sprintf("u%d", i)}, func(context.Context, Prompt) (string, error) { return "pw", nil })
			case 1:
				_, err = ts.client.Authorize(ctx, AuthorRequest{User: "alice", Cmd: "show"})
			case 2:
				_, err = ts.client.Account(ctx, AcctRequest{User: "alice", Flags: FlagStart, TaskID: "1"})
			case 3:
				_, err = ts.client.Status(ctx)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("request failed under load: %v", err)
	}
	if got := ts.convs.live(); got != 0 {
		t.Errorf("%d conversations left", got)
	}
}

// TestCallerAttributes: the pairs the agent sets from SO_PEERCRED are optional pairs under the reserved
// prefix, and the validator refuses each of them from a caller.
func TestCallerAttributes(t *testing.T) {
	got := CallerAttributes(Caller{UID: 1000, GID: 100, PID: 4242})
	want := []string{"caller_uid*1000", "caller_gid*100", "caller_pid*4242"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("CallerAttributes = %v, want %v", got, want)
	}
	for _, a := range got {
		req := AcctRequest{Flags: FlagStart, User: "alice", AV: []string{a}}
		if e := req.validate(); e == nil || e.code != CodeBadRequest {
			t.Errorf("a caller-supplied %q was accepted", a)
		}
	}
}
