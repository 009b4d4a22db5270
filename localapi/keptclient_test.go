package localapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
)

// TestKeptConnectionsReused: a Client WithKeptConnections sends its requests one after the other on one
// connection (the server holds one connection of the caller's uid between them), and every request is
// served once.
func TestKeptConnectionsReused(t *testing.T) {
	b := newFakeBackend()
	// rootUID 4242: the test's uid 0 is counted like any caller, so the server's count of its connections
	// is visible.
	ts := startServer(t, b, func(c *Config) { c.Group, c.rootUID = "root", 4242 })
	c := NewClient(ts.sock, WithKeptConnections(4))
	defer c.Close()
	ctx := context.Background()
	for i := range 50 {
		if _, err := c.Authenticate(ctx, AuthenRequest{User: "alice", Password: "pw", Type: TypePAP}, nil); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		if n := ts.shares.connections(0); n != 1 {
			t.Fatalf("after login %d the server holds %d connections of the caller, want the one kept", i, n)
		}
	}
	if n := b.count("alice"); n != 50 {
		t.Fatalf("the backend served %d logins, want 50", n)
	}
	c.Close()
	waitCond(t, func() bool { return ts.shares.connections(0) == 0 })

	// Without the option, nothing is kept.
	plain := NewClient(ts.sock)
	if _, err := plain.Authenticate(ctx, AuthenRequest{User: "alice", Password: "pw", Type: TypePAP}, nil); err != nil {
		t.Fatal(err)
	}
	waitCond(t, func() bool { return ts.shares.connections(0) == 0 })
}

// TestEvictedConnectionNotServed: the server never serves a request read on a connection it evicted
// while idle. The interleaving of a real race (the request's bytes arrive as the eviction closes the
// connection) is forced by marking the idle connection evicted, as the eviction does under the lock, and
// then sending the request on it: no answer, the connection closed, and the backend never called.
func TestEvictedConnectionNotServed(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.Group, c.rootUID = "root", 4242 })
	k := dialKept(t, ts.sock)
	body := `{"user":"alice","password":"pw","type":"pap"}`
	if st, out, err := k.round(http.MethodPost, "/v1/authenticate", body); err != nil || st != 200 {
		t.Fatalf("first login: %d %s %v", st, out, err)
	}
	waitCond(t, func() bool { ts.shares.mu.Lock(); defer ts.shares.mu.Unlock(); return len(ts.shares.idle[0]) == 1 })
	ts.shares.mu.Lock()
	for pc := range ts.shares.idle[0] {
		pc.evicted = true
	}
	ts.shares.mu.Unlock()
	if st, out, err := k.round(http.MethodPost, "/v1/authenticate", body); err == nil {
		t.Fatalf("a request on an evicted connection was answered: %d %s", st, out)
	}
	if n := b.count("alice"); n != 1 {
		t.Fatalf("the backend served %d logins, want 1 (the request on the evicted connection is not served)", n)
	}
}

// scriptedAgent is a unix-socket HTTP server under the test's control, run by the test's own uid (so the
// Client trusts it): for each request it reads, act says whether to answer it or to close the connection
// without an answer. It records every request it read, by connection.
type scriptedAgent struct {
	l    net.Listener
	act  func(conn, req int) bool // true: answer with a permit
	mu   sync.Mutex
	seen [][]string // the paths read, per connection
	wg   sync.WaitGroup
}

func startScriptedAgent(t *testing.T, act func(conn, req int) bool) *scriptedAgent {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	a := &scriptedAgent{l: l, act: act}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.seen = append(a.seen, nil)
			n := len(a.seen) - 1
			a.mu.Unlock()
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.serve(c, n)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); a.wg.Wait() })
	return a
}

func (a *scriptedAgent) serve(c net.Conn, n int) {
	defer c.Close()
	rd := bufio.NewReader(c)
	for i := 0; ; i++ {
		req, err := http.ReadRequest(rd)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		a.mu.Lock()
		a.seen[n] = append(a.seen[n], req.URL.Path)
		a.mu.Unlock()
		if !a.act(n, i) {
			return
		}
		body := `{"result":"permit"}` + "\n"
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
			return
		}
	}
}

func (a *scriptedAgent) requests() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([][]string, len(a.seen))
	for i, s := range a.seen {
		out[i] = append([]string(nil), s...)
	}
	return out
}

// TestKeptConnectionClosedIsResent: a kept connection that the agent closes as a request arrives, with no
// answer (what an eviction or the agent's idle timeout looks like to the client), gets the request again
// on a new connection, and the caller sees the answer. A request on a new connection that is closed
// unanswered is not sent again: the agent may have acted on it.
func TestKeptConnectionClosedIsResent(t *testing.T) {
	ctx := context.Background()
	req := AuthorRequest{User: "alice", Cmd: "show"}

	// Connection 0 answers its first request and closes at its second; connection 1 answers.
	a := startScriptedAgent(t, func(conn, i int) bool { return conn != 0 || i == 0 })
	c := NewClient(a.l.Addr().String(), WithKeptConnections(2))
	defer c.Close()
	for i := range 2 {
		if _, err := c.Authorize(ctx, req); err != nil {
			t.Fatalf("authorization %d: %v", i, err)
		}
	}
	got := a.requests()
	if len(got) != 2 || len(got[0]) != 2 || len(got[1]) != 1 {
		t.Fatalf("requests read per connection: %v; want the second sent on the kept one, closed, and again on a new one", got)
	}

	// A new connection closed without an answer: an error, and the request read once.
	b := startScriptedAgent(t, func(int, int) bool { return false })
	c2 := NewClient(b.l.Addr().String(), WithKeptConnections(2))
	defer c2.Close()
	_, err := c2.Authorize(ctx, req)
	var le *Error
	if err == nil || errors.As(err, &le) && le.Status == http.StatusOK {
		t.Fatalf("a request closed unanswered on a new connection: %v", err)
	}
	if got := b.requests(); len(got) != 1 || len(got[0]) != 1 {
		t.Fatalf("requests read per connection: %v; want one, not sent again", got)
	}
}
