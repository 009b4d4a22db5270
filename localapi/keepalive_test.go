package localapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/tacagent/tacagent/tacplus"
)

// acctRecorder is the fake backend with its accounting records kept; a task_id "refused" is answered as
// a record the spool kept because no server took it.
type acctRecorder struct {
	*fakeBackend
	mu      sync.Mutex
	records []AcctRequest
	callers []Caller
}

func (a *acctRecorder) Authorize(ctx context.Context, c Caller, req AuthorRequest) (AuthorResult, error) {
	a.mu.Lock()
	a.callers = append(a.callers, c)
	a.mu.Unlock()
	return a.fakeBackend.Authorize(ctx, c, req)
}

func (a *acctRecorder) Account(ctx context.Context, c Caller, req AcctRequest) (AcctResult, error) {
	a.mu.Lock()
	a.records = append(a.records, req)
	a.mu.Unlock()
	if req.TaskID == "refused" {
		return AcctResult{Spooled: true}, &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "no server answered; spooled"}
	}
	if req.Ack == AckQueued {
		return AcctResult{Result: ResultQueued}, nil
	}
	return a.fakeBackend.Account(ctx, c, req)
}

func (a *acctRecorder) taken() []AcctRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AcctRequest(nil), a.records...)
}

// TestAuthorizeStart: the start option sends the START through the backend's accounting (so its spool)
// only when the command is permitted, with the authorization's pairs, and reports its outcome.
func TestAuthorizeStart(t *testing.T) {
	b := &acctRecorder{fakeBackend: newFakeBackend()}
	ts := startServer(t, b, nil)

	var res AuthorResult
	r := ts.post(t, "/v1/authorize", AuthorRequest{User: "alice", Cmd: "show", Args: []string{"version"},
		PrivLvl: 15, Port: "pts/1", Start: &StartRequest{TaskID: "42.1", AV: []string{"start_time=1700000000"}}}, &res)
	if r.status != 200 || res.Result != ResultPermit || res.Start == nil || res.Start.Result != ResultOK || res.Start.SessionID != 7 {
		t.Fatalf("permitted: %d %s", r.status, r.body)
	}
	got := b.taken()
	want := AcctRequest{Flags: FlagStart, User: "alice", TaskID: "42.1", PrivLvl: 15, Port: "pts/1",
		AV: []string{"service=shell", "cmd=show", "cmd-arg=version", "start_time=1700000000"}}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("records %+v, want %+v", got, want)
	}

	// Denied: no START, no "start" member.
	res = AuthorResult{}
	r = ts.post(t, "/v1/authorize", AuthorRequest{User: "alice", Cmd: "reload", Start: &StartRequest{TaskID: "42.2"}}, &res)
	if r.status != 200 || res.Result != ResultDeny || res.Start != nil || strings.Contains(r.body, `"start"`) {
		t.Fatalf("denied: %d %s", r.status, r.body)
	}
	// No server could be asked: no START either (the caller decides its fallback and sends one itself).
	res = AuthorResult{}
	r = ts.post(t, "/v1/authorize", AuthorRequest{User: "down", Cmd: "show", Start: &StartRequest{TaskID: "42.3"}}, &res)
	if r.status != 200 || res.Result != ResultError || res.Start != nil {
		t.Fatalf("unreachable: %d %s", r.status, r.body)
	}
	if n := len(b.taken()); n != 1 {
		t.Fatalf("%d records after a deny and an outage, want 1", n)
	}

	// A START no server took: reported, the command's verdict unchanged.
	res = AuthorResult{}
	r = ts.post(t, "/v1/authorize", AuthorRequest{User: "alice", Cmd: "show", Start: &StartRequest{TaskID: "refused"}}, &res)
	if r.status != 200 || res.Result != ResultPermit || res.Start == nil || res.Start.Result != ResultError ||
		!res.Start.Spooled || res.Start.Error == nil || res.Start.Error.Code != "unreachable" {
		t.Fatalf("START not taken: %d %s", r.status, r.body)
	}

	// ack "queued" reaches the backend as such, and its answer says so; the default is "ok".
	res = AuthorResult{}
	r = ts.post(t, "/v1/authorize", AuthorRequest{User: "alice", Cmd: "show", Start: &StartRequest{TaskID: "q", Ack: AckQueued}}, &res)
	if got := b.taken(); r.status != 200 || res.Start == nil || res.Start.Result != ResultQueued || got[len(got)-1].Ack != AckQueued {
		t.Fatalf("queued: %d %s", r.status, r.body)
	}
	if got := b.taken(); got[0].Ack != "" {
		t.Fatal("a START without ack was queued")
	}

	// Refused requests: nothing reaches the backend.
	for _, body := range []string{
		`{"user":"alice","cmd":"show","start":{"task_id":"1","ack":"maybe"}}`,
		`{"user":"alice","cmd":"show","start":{}}`,
		`{"user":"alice","cmd":"show","start":{"task_id":"a b"}}`,
		`{"user":"alice","cmd":"show","start":{"task_id":"1","av":["caller_uid=0"]}}`,
		`{"user":"alice","cmd":"show","start":{"task_id":"1","extra":1}}`,
	} {
		n := len(b.taken())
		if r := ts.do(t, http.MethodPost, "/v1/authorize", body); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
		if len(b.taken()) != n {
			t.Errorf("%s: a record reached the backend", body)
		}
	}
}

// keptConn is a raw HTTP/1.1 keep-alive connection to the socket.
type keptConn struct {
	c  net.Conn
	rd *bufio.Reader
}

func dialKept(t *testing.T, sock string) *keptConn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keptConn{c: c, rd: bufio.NewReader(c)}
}

// round sends one request and reads its answer; err is the connection's failure (closed by the server).
func (k *keptConn) round(method, path, body string) (int, string, error) {
	_ = k.c.SetDeadline(time.Now().Add(testWait))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: tacagent\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		method, path, len(body), body)
	if _, err := io.WriteString(k.c, req); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(k.rd, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.Close {
		return resp.StatusCode, string(b), io.EOF
	}
	return resp.StatusCode, string(b), err
}

// TestKeepAliveFloodRateLimited: the failure limit applies to each request on one kept connection, as it
// does across connections: a flood of wrong passwords over a single connection gets MaxFailures answers
// from the backend, then 429s, and the connection stays the same throughout.
func TestKeepAliveFloodRateLimited(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) {
		c.RateLimit = RateLimit{MaxFailures: 3, Window: time.Minute, BaseDelay: 10 * time.Second}
	})
	k := dialKept(t, ts.sock)
	bad := `{"user":"alice","type":"pap","password":"wrong"}`
	var statuses []int
	for i := 0; i < 50; i++ {
		st, body, err := k.round(http.MethodPost, "/v1/authenticate", bad)
		if err != nil {
			t.Fatalf("request %d on the kept connection: %v (%d %s)", i, err, st, body)
		}
		statuses = append(statuses, st)
	}
	if b.count("alice") != 3 {
		t.Fatalf("the backend saw %d attempts over one connection, want 3", b.count("alice"))
	}
	for i, st := range statuses {
		if want := map[bool]int{true: 200, false: http.StatusTooManyRequests}[i < 3]; st != want {
			t.Fatalf("request %d: %d, want %d (all %v)", i, st, want, statuses)
		}
	}
	// Authorizations over the same connection are served one at a time (HTTP/1.1 has no concurrency on a
	// connection), each with the peer check: 200 here for root.
	if st, body, err := k.round(http.MethodPost, "/v1/authorize", `{"user":"alice","cmd":"show"}`); err != nil || st != 200 {
		t.Fatalf("authorize on the kept connection: %d %s %v", st, body, err)
	}
}

// TestKeepAliveIdleEvicted: a uid at its connection share whose connections are idle between requests
// (kept open) gets a new connection served: the oldest idle one is closed for it. When none is idle, the
// new one is refused as before, and the uid never holds more than its share.
func TestKeepAliveIdleEvicted(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.Group, c.rootUID, c.ConnectionShare = "root", 4242, 2 })
	first, second := dialKept(t, ts.sock), dialKept(t, ts.sock)
	for _, k := range []*keptConn{first, second} {
		if st, body, err := k.round(http.MethodGet, "/v1/status", ""); err != nil || st != 200 {
			t.Fatalf("status: %d %s %v", st, body, err)
		}
	}
	waitCond(t, func() bool { ts.shares.mu.Lock(); defer ts.shares.mu.Unlock(); return len(ts.shares.idle[0]) == 2 })
	third := dialKept(t, ts.sock)
	if st, body, err := third.round(http.MethodGet, "/v1/status", ""); err != nil || st != 200 {
		t.Fatalf("a new connection over the share with idle ones: %d %s %v", st, body, err)
	}
	// The oldest idle one was closed by the server: its next request finds it closed, with no answer.
	if _, _, err := first.round(http.MethodGet, "/v1/status", ""); err == nil {
		t.Fatal("the oldest idle connection still serves")
	}
	if st, _, err := second.round(http.MethodGet, "/v1/status", ""); err != nil || st != 200 {
		t.Fatalf("the other idle connection: %d %v", st, err)
	}
	if n := ts.shares.connections(0); n > 2 {
		t.Fatalf("uid 0 holds %d connections, share 2", n)
	}
	if got := testutil.ToFloat64(ts.metrics.APIRejected.WithLabelValues("idle_evicted")); got != 1 {
		t.Errorf("api_rejected_total{reason=idle_evicted} = %v", got)
	}

	// Both connections busy (each in a request that waits for its deadline): a third is refused.
	var wg sync.WaitGroup
	for _, k := range []*keptConn{second, third} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = k.c.SetDeadline(time.Now().Add(testWait))
			body := `{"user":"hang","cmd":"show"}`
			_, _ = fmt.Fprintf(k.c, "POST /v1/authorize HTTP/1.1\r\nHost: tacagent\r\nTacagent-Timeout-Ms: 3000\r\n"+
				"Content-Length: %d\r\n\r\n%s", len(body), body)
			if resp, err := http.ReadResponse(k.rd, nil); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	waitCond(t, func() bool { ts.shares.mu.Lock(); defer ts.shares.mu.Unlock(); return len(ts.shares.idle[0]) == 0 })
	fourth := dialKept(t, ts.sock)
	st, body, _ := fourth.round(http.MethodGet, "/v1/status", "")
	if st != http.StatusServiceUnavailable || !strings.Contains(body, CodeTooManyConnections) {
		t.Fatalf("over the share with no idle connection: %d %s", st, body)
	}
	wg.Wait()
}

// keptFDEnv makes the test binary a process of another uid that opens a connection, makes one request on
// it (keep-alive), and hands the open connection to its parent over descriptor 3 (SCM_RIGHTS).
const keptFDEnv = "LOCALAPI_TEST_KEPT_FD"

func keptFDChild() int {
	c, err := net.Dial("unix", os.Getenv(childEnv))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	k := &keptConn{c: c, rd: bufio.NewReader(c)}
	if st, body, err := k.round(http.MethodGet, "/v1/status", ""); err != nil || st != 200 {
		fmt.Println("error", st, body, err)
		return 1
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if err := unix.Sendmsg(3, []byte{1}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("sent")
	return 0
}

// TestKeptConnectionOtherUID: a kept connection is its opener's for its whole life. Handed to a process
// of another uid (here root, with a descriptor passed over SCM_RIGHTS), every request on it is still the
// opener's: checked, attributed and limited as uid 65534, never as the process that now writes on it.
func TestKeptConnectionOtherUID(t *testing.T) {
	bin := childBinary(t)
	b := &acctRecorder{fakeBackend: newFakeBackend()}
	ts := startServer(t, b, func(c *Config) { c.Group = "nogroup" })
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "mine"), os.NewFile(uintptr(pair[1]), "theirs")
	defer mine.Close()
	cmd := exec.Command(bin)
	cmd.Env = []string{childEnv + "=" + ts.sock, keptFDEnv + "=1"}
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	theirs.Close()
	if err != nil || !strings.Contains(string(out), "sent") {
		t.Fatalf("child: %v %s", err, out)
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(mine.Fd()), buf, oob, 0)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v", err)
	}
	f := os.NewFile(uintptr(fds[0]), "kept")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := &keptConn{c: c, rd: bufio.NewReader(c)}

	// The root-only endpoint is refused on the handed connection (uid 65534 is not root) ...
	st, body, err := k.round(http.MethodGet, "/v1/sessions?auid=0&ses=1", "")
	if err != nil || st != http.StatusForbidden {
		t.Fatalf("root-only endpoint on another uid's kept connection: %d %s %v", st, body, err)
	}
	// ... and an authorization on it is the opener's.
	if st, body, err := k.round(http.MethodPost, "/v1/authorize", `{"user":"alice","cmd":"show"}`); err != nil || st != 200 {
		t.Fatalf("authorize: %d %s %v", st, body, err)
	}
	b.mu.Lock()
	callers := append([]Caller(nil), b.callers...)
	b.mu.Unlock()
	if len(callers) != 1 || callers[0].UID != 65534 || callers[0].PID == os.Getpid() {
		t.Fatalf("callers %+v: want the opener, uid 65534", callers)
	}
	if r := ts.post(t, "/v1/authorize", AuthorRequest{User: "alice", Cmd: "show"}, nil); r.status != 200 {
		t.Fatalf("root's own connection: %d %s", r.status, r.body)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.callers) != 2 || b.callers[1].UID != 0 {
		t.Fatalf("callers %+v: want root on its own connection", b.callers)
	}
}
