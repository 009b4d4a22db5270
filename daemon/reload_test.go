package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRequestDuringReload: a request that took the old runtime just before a reload swapped it, and reached
// the old agent after the reload had closed it, is sent again on the new runtime instead of failing with
// "agent is closed" (found by the chaos soak: 1 login in 884,937).
func TestRequestDuringReload(t *testing.T) {
	key := []byte("daemon-reload-key-0123")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true, Users: map[string]tacplustest.User{"alice": {Password: "pw"}},
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: "show( .*)?", Permit: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: key}}}, Groups: []string{"default"}}
	d, err := New(s, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := backend{d}
	req := localapi.AuthorRequest{User: "alice", Cmd: "show", Args: []string{"version"}}

	old := d.cur.Load()
	s.ServersChanged = true
	if err := d.Reload(s); err != nil {
		t.Fatal(err)
	}
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := old.agent.Authorize(ctx, agent.AuthorRequest{User: "alice"}); errors.Is(err, agent.ErrClosed) {
			break
		}
		select {
		case <-deadline.C:
			t.Fatal("the replaced agent was never closed")
		case <-tick.C:
		}
	}

	calls := 0
	res, err := onCurrent(b, func(rt *runtime) (localapi.AuthorResult, error) {
		calls++
		if calls == 1 {
			rt = old // the runtime the request loaded before the swap
		}
		return b.authorize(ctx, rt, localapi.Caller{}, req)
	})
	if err != nil || calls != 2 {
		t.Fatalf("request during a reload: %v after %d calls, want a permit on the second (the new agent)", err, calls)
	}
	if res.Server != srv.Addr() {
		t.Fatalf("answered by %q, want %q", res.Server, srv.Addr())
	}
}
