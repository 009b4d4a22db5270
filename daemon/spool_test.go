package daemon

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/spool"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// spoolDaemon is a daemon with the accounting spool at path, over one server at addr.
func spoolDaemon(t *testing.T, key []byte, addr, path string) (*Daemon, *localapi.Client) {
	t.Helper()
	d, err := New(Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: addr, Key: key, Timeout: 2 * time.Second, DialTimeout: time.Second}}},
		Groups: []string{"default"}, Spool: &spool.Config{Path: path, RetryInitial: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "tacagent.sock")
	if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
		t.Fatal(err)
	}
	c := localapi.NewClient(sock)
	t.Cleanup(func() {
		c.Close()
		shutdown(t, d)
	})
	return d, c
}

func shutdown(t testing.TB, d *Daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// closedAddr is a loopback address where nothing listens: a server that is down.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestAccountThroughSpool: with the spool on, a record a server takes at once is answered ok and leaves
// nothing behind; a record no server takes is answered spooled, shows in status, and survives a restart
// of the daemon to reach the server the next daemon knows.
func TestAccountThroughSpool(t *testing.T) {
	key := []byte("daemon-spool-key-0123")
	srv := startTestServer(t, key)
	path := filepath.Join(t.TempDir(), "spool.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := localapi.AcctRequest{Flags: localapi.FlagStart, User: "alice", TaskID: "up-1", AV: []string{"service=shell"}}

	t.Run("delivered", func(t *testing.T) {
		d, c := spoolDaemon(t, key, srv.Addr(), path)
		res, err := c.Account(ctx, req)
		if err != nil || res.Spooled || res.Server != srv.Addr() {
			t.Fatalf("%+v %v", res, err)
		}
		waitRecord(t, srv, "up-1")
		st, err := c.Status(ctx)
		if err != nil || st.SpoolDepth != 0 || st.SpoolPath != path || !st.SpoolOldest.IsZero() {
			t.Fatalf("status %+v %v", st, err)
		}
		if d.Spool().Stats().Depth != 0 {
			t.Error("depth")
		}
	})

	t.Run("spooled then replayed after a restart", func(t *testing.T) {
		_, c := spoolDaemon(t, key, closedAddr(t), path)
		req.TaskID = "down-1"
		res, err := c.Account(ctx, req)
		if !res.Spooled || !errors.Is(err, tacplus.ErrUnreachable) {
			t.Fatalf("%+v %v", res, err)
		}
		req.Flags = localapi.FlagStop
		if res, err := c.Account(ctx, req); !res.Spooled || err == nil {
			t.Fatalf("stop: %+v %v", res, err)
		}
		st, err := c.Status(ctx)
		if err != nil || st.SpoolDepth != 2 || st.SpoolOldest.IsZero() || st.SpoolOldestAge < 0 || st.SpoolBytes == 0 {
			t.Fatalf("status %+v %v", st, err)
		}
	})
	// The first daemon of the subtest above was shut down with the two records in its spool.
	d, _ := spoolDaemon(t, key, srv.Addr(), path)
	start := waitRecord(t, srv, "down-1")
	if start.Flags != tacplus.AcctFlagStart {
		t.Errorf("first record %v, want START first", start.Flags)
	}
	testkit.EventuallyEvery(t, 20*time.Second, 5*time.Millisecond, "an empty spool", func() bool { return d.Spool().Stats().Depth == 0 })
	var got []tacplus.AcctFlag
	for _, r := range srv.Accounting() {
		if r.TaskID == "down-1" {
			got = append(got, r.Flags)
		}
	}
	if len(got) != 2 || got[0] != tacplus.AcctFlagStart || got[1] != tacplus.AcctFlagStop {
		t.Errorf("records of down-1 %v, want START then STOP", got)
	}
	if n := d.Metrics().SpoolReplayed; n == nil {
		t.Error("no metric")
	}
}

// TestSpoolLockedByAnotherDaemon: a second daemon on the same spool file fails to start with a clear error
// instead of hanging.
func TestSpoolLockedByAnotherDaemon(t *testing.T) {
	key := []byte("daemon-spool-key-0123")
	path := filepath.Join(t.TempDir(), "spool.db")
	spoolDaemon(t, key, closedAddr(t), path)
	_, err := New(Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: closedAddr(t), Key: key}}}, Groups: []string{"default"},
		Spool: &spool.Config{Path: path, LockTimeout: 200 * time.Millisecond}}, zerolog.Nop())
	if !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("err %v", err)
	}
}

// TestAuthorizeStartThroughSpool: an authorization that carries a START sends it through the spool when
// the command is permitted (and never when it is denied): answered once a server took it by default, or
// once it is queued with ack "queued"; either way the server gets it with the caller's credentials, and a
// STOP of the same task sent right after a queued START reaches the server after it.
func TestAuthorizeStartThroughSpool(t *testing.T) {
	key := []byte("daemon-spool-key-0123")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Users: map[string]tacplustest.User{"alice": {Password: "pw"}}, AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: "rm( .*)?"}, {User: "alice", Command: ".*", Permit: true}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	_, c := spoolDaemon(t, key, srv.Addr(), filepath.Join(t.TempDir(), "spool.db"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	res, err := c.Authorize(ctx, localapi.AuthorRequest{User: "alice", Cmd: "show", Args: []string{"version"},
		Start: &localapi.StartRequest{TaskID: "s-1"}})
	if err != nil || res.Start == nil || res.Start.Result != localapi.ResultOK || res.Start.Server != srv.Addr() {
		t.Fatalf("delivered: %+v %v", res, err)
	}
	rec := waitRecord(t, srv, "s-1")
	if rec.Flags != tacplus.AcctFlagStart || !slices.Contains(rec.Args, "cmd=show") || !slices.Contains(rec.Args, "cmd-arg=version") ||
		!slices.ContainsFunc(rec.Args, func(a string) bool { return strings.HasPrefix(a, "caller_uid*") }) {
		t.Fatalf("START s-1: %+v", rec)
	}

	if res, err := c.Authorize(ctx, localapi.AuthorRequest{User: "alice", Cmd: "rm", Start: &localapi.StartRequest{TaskID: "d-1"}}); !errors.Is(err, tacplus.ErrDenied) || res.Start != nil {
		t.Fatalf("denied: %+v %v", res, err)
	}

	res, err = c.Authorize(ctx, localapi.AuthorRequest{User: "alice", Cmd: "show", Start: &localapi.StartRequest{TaskID: "q-1", Ack: localapi.AckQueued}})
	if err != nil || res.Start == nil || res.Start.Result != localapi.ResultQueued {
		t.Fatalf("queued: %+v %v", res, err)
	}
	if _, err := c.Account(ctx, localapi.AcctRequest{Flags: localapi.FlagStop, User: "alice", TaskID: "q-1", AV: []string{"service=shell", "cmd=show", "status=0"}}); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, srv, "q-1")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []tacplus.AcctFlag
		for _, r := range srv.Accounting() {
			if r.TaskID == "q-1" {
				got = append(got, r.Flags)
			}
			if r.TaskID == "d-1" {
				t.Fatal("a denied command was accounted")
			}
		}
		if len(got) == 2 {
			if got[0] != tacplus.AcctFlagStart || got[1] != tacplus.AcctFlagStop {
				t.Fatalf("records of q-1 %v, want START then STOP", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records of q-1 %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDurableAck: with ack "durable" the agent answers once its spool has committed the record, without
// waiting for a server: against a server that holds back its answers (3 s, past the caller's deadline of
// 1.5 s), a durable record is answered "durable" while the same record with the default ack is not
// answered with a success before the caller's deadline. The spool keeps them.
func TestDurableAck(t *testing.T) {
	key := []byte("daemon-spool-key-0123")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Users: map[string]tacplustest.User{"slow": {Password: "pw", Delay: 3 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	_, c := spoolDaemon(t, key, srv.Addr(), filepath.Join(t.TempDir(), "spool.db"))
	rec := func(task, ack string) (*localapi.AcctResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		return c.Account(ctx, localapi.AcctRequest{Flags: localapi.FlagStart, User: "slow", TaskID: task, Ack: ack,
			AV: []string{"service=shell", "cmd=show"}})
	}
	res, err := rec("durable-1", localapi.AckDurable)
	if err != nil || res.Result != localapi.ResultDurable || res.Server != "" {
		t.Fatalf("durable: %+v %v", res, err)
	}
	// The default waits for the server: the caller's deadline ends it first (answered spooled at the
	// deadline, or the caller stops reading as it passes).
	if res, err = rec("delivered-1", ""); err == nil {
		t.Fatalf("delivered (the default) answered before the server: %+v", res)
	}
	if st, err := c.Status(context.Background()); err != nil || st.SpoolDepth < 1 {
		t.Fatalf("status %+v %v: want the records kept in the spool", st, err)
	}
}
