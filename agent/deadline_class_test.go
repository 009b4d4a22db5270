package agent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestDeadlineIsTimeout: a request whose caller's deadline passes while it waits (here queued behind the
// single-connect negotiation of a slow first session) ends with ErrTimeout, not ErrAborted; a request the
// caller cancels ends with ErrAborted. Found by the chaos soak.
func TestDeadlineIsTimeout(t *testing.T) {
	key := []byte("deadline-key-0123456789")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true, Users: map[string]tacplustest.User{
		"slow": {Password: "pw", Delay: 2 * time.Second}, "bob": {Password: "pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a, err := agent.New(agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: key, Timeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())

	// The slow session negotiates the connection; the next requests queue behind it (RFC 8907 4.3).
	slowDone := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(context.Background(), agent.AuthenRequest{User: "slow", Password: []byte("pw"), Type: tacplus.AuthenTypePAP}, nil)
		slowDone <- err
	}()
	eventually(t, 5*time.Second, "the slow session at the server", func() bool { return srv.Stats().Sessions >= 1 })

	// 20 ms: less than the 50 ms a request waits behind a pending negotiation before it takes a
	// connection of its own, so the deadline passes while it is queued (or, on a slow machine, in flight:
	// ErrTimeout either way).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = a.Authenticate(ctx, agent.AuthenRequest{User: "bob", Password: []byte("pw"), Type: tacplus.AuthenTypePAP}, nil)
	if !errors.Is(err, tacplus.ErrTimeout) || tacplus.ClassOf(err) != tacplus.ErrTimeout {
		t.Fatalf("deadline passed while queued: got %v (class %v), want ErrTimeout", err, tacplus.ClassOf(err))
	}

	cctx, ccancel := context.WithCancel(context.Background())
	ccancel() // cancelled before it is even sent: the caller gave up
	_, err = a.Authenticate(cctx, agent.AuthenRequest{User: "bob", Password: []byte("pw"), Type: tacplus.AuthenTypePAP}, nil)
	if tacplus.ClassOf(err) != tacplus.ErrAborted {
		t.Fatalf("cancelled by the caller: got %v (class %v), want ErrAborted", err, tacplus.ClassOf(err))
	}
	if err := <-slowDone; err != nil {
		t.Fatalf("the slow session: %v", err)
	}
	// Issue 12 point 3: a request whose caller gave up is never sent afterwards (not when the negotiation
	// wait hands it back, not on another connection).
	if n := srv.Stats().Sessions; n != 1 {
		t.Fatalf("server saw %d sessions, want only the slow one: a request was sent after its caller gave up", n)
	}
}
