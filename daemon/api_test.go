package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// apiDaemon is a daemon over the given test servers (in order) serving the local API on a socket in a
// temporary directory.
func apiDaemon(t *testing.T, key []byte, timeout time.Duration, srvs ...*tacplustest.Server) (*Daemon, string) {
	t.Helper()
	var servers []agent.Server
	for _, s := range srvs {
		servers = append(servers, agent.Server{Addr: s.Addr(), Key: key, Timeout: timeout})
	}
	d, err := New(Settings{Agent: agent.Config{Servers: servers}, Groups: []string{"default"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	sock := filepath.Join(t.TempDir(), "tacagent.sock")
	if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
		t.Fatal(err)
	}
	return d, sock
}

func startTestServer(t *testing.T, key []byte) *tacplustest.Server {
	t.Helper()
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Users: map[string]tacplustest.User{"alice": {Password: "pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// waitRecord waits (at most 20 s) for the accounting record with the given task_id at srv.
func waitRecord(t *testing.T, srv *tacplustest.Server, taskID string) tacplustest.AcctRecord {
	t.Helper()
	var rec tacplustest.AcctRecord
	testkit.EventuallyEvery(t, 20*time.Second, 5*time.Millisecond, "the record with task_id "+taskID+" at the server", func() bool {
		for _, r := range srv.Accounting() {
			if r.TaskID == taskID {
				rec = r
				return true
			}
		}
		return false
	})
	return rec
}

// TestAccountCallerFirst: the record a server receives carries the caller's identity as the kernel gave it
// (caller_uid, caller_gid, caller_pid) ahead of every pair the caller gave. Only the accounting pairs of
// RFC 8907 section 8.3 (task_id, stop_time, ...) come before them: the accounting FSM moves those to the
// front, as the RFC asks.
func TestAccountCallerFirst(t *testing.T) {
	key := []byte("daemon-api-key-0123")
	srv := startTestServer(t, key)
	_, sock := apiDaemon(t, key, 5*time.Second, srv)
	c := localapi.NewClient(sock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Account(ctx, localapi.AcctRequest{User: "alice", Flags: localapi.FlagStop, TaskID: "41",
		AV: []string{"cmd=ls -l", "elapsed_time=3", "service=shell"}}); err != nil {
		t.Fatal(err)
	}
	rec := waitRecord(t, srv, "41")
	me := localapi.Caller{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), PID: os.Getpid()}
	want := append([]string{"task_id=41", "elapsed_time=3"}, localapi.CallerAttributes(me)...)
	want = append(want, "cmd=ls -l", "service=shell")
	if strings.Join(rec.Args, "|") != strings.Join(want, "|") {
		t.Errorf("record args %q, want %q", rec.Args, want)
	}
}

// TestAPIDeadlineStopsFailover: a caller that keeps its connection open past the deadline it sent (as the
// PAM module does, to read the answer) is answered at that deadline, and its record is never sent to the
// next server after it; a request without a deadline, sent later, does fail over: it is the proof that
// the first one would have arrived by then.
func TestAPIDeadlineStopsFailover(t *testing.T) {
	key := []byte("daemon-api-key-0123")
	primary, secondary := startTestServer(t, key), startTestServer(t, key)
	if err := primary.SetFaults(tacplustest.Faults{DropReplies: 1000}); err != nil {
		t.Fatal(err)
	}
	_, sock := apiDaemon(t, key, time.Second, primary, secondary) // failover after 1 s of silence
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	post := func(taskID, timeoutMs string) (int, string, time.Duration) {
		req, err := http.NewRequest(http.MethodPost, "http://tacagent/v1/account",
			strings.NewReader(`{"user":"alice","flags":"start","task_id":"`+taskID+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		if timeoutMs != "" {
			req.Header.Set(localapi.TimeoutHeader, timeoutMs)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	status, body, took := post("impatient", "200")
	t.Logf("impatient request answered after %v: %d %s", took, status, strings.TrimSpace(body))
	if status != http.StatusOK || !strings.Contains(body, `"result":"error"`) || !strings.Contains(body, `"code":"timeout"`) {
		t.Errorf("impatient request: %d %s, want a 200 error of class timeout", status, body)
	}
	// The answer came at the caller's deadline, not at the server timeout (1 s) plus failover.
	if took >= time.Second {
		t.Errorf("the impatient request was answered after %v, not at its 200 ms deadline", took)
	}
	status, body, _ = post("patient", "")
	if status != http.StatusOK || !strings.Contains(body, `"result":"ok"`) {
		t.Fatalf("patient request: %d %s, want ok after failover", status, body)
	}
	waitRecord(t, secondary, "patient")
	for _, r := range secondary.Accounting() {
		if r.TaskID == "impatient" {
			t.Errorf("the impatient record reached the secondary after its caller's deadline")
		}
	}
	for _, r := range primary.Accounting() {
		if r.TaskID == "impatient" {
			return // sent to the primary before the deadline: allowed (the primary dropped its reply)
		}
	}
	t.Error("the impatient record never reached the primary: the test did not exercise the deadline")
}

// TestAPIDeadlinePassedNothingSent: a request whose caller has already given up ("0") reaches no server.
func TestAPIDeadlinePassedNothingSent(t *testing.T) {
	key := []byte("daemon-api-key-0123")
	srv := startTestServer(t, key)
	_, sock := apiDaemon(t, key, 5*time.Second, srv)
	c := localapi.NewClient(sock)
	defer c.Close()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	_, err := c.Account(ctx, localapi.AcctRequest{User: "alice", Flags: localapi.FlagStart, TaskID: "late"})
	if !errors.Is(err, tacplus.ErrTimeout) {
		t.Errorf("account with an expired context: %v, want a timeout", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	if _, err := c.Account(ctx2, localapi.AcctRequest{User: "alice", Flags: localapi.FlagStart, TaskID: "ontime"}); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, srv, "ontime")
	for _, r := range srv.Accounting() {
		if r.TaskID == "late" {
			t.Error("a request sent with an expired deadline reached the server")
		}
	}
}
