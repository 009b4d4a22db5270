package daemon

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tacagent/tacagent/localapi"
)

type fakeKernel map[int][3]uint64 // pid -> auid, ses, start

func (k fakeKernel) ids(pid int) (uint32, uint32, uint64, error) {
	v, ok := k[pid]
	if !ok {
		return 0, 0, 0, os.ErrNotExist
	}
	return uint32(v[0]), uint32(v[1]), v[2], nil
}

func TestSessionTable(t *testing.T) {
	k := fakeKernel{10: {1000, 3, 5}, 20: {unsetAuditID, unsetAuditID, 7}}
	now := time.Unix(1000, 0)
	tb := &sessionTable{ids: k.ids, now: func() time.Time { return now }}
	start := func(pid int, task string) {
		if err := tb.register(pid, localapi.AcctRequest{Flags: localapi.FlagStart, User: "alice", TaskID: task, Port: "ssh"}); err != nil {
			t.Fatal(err)
		}
	}
	start(10, "t10")
	if got := tb.lookup(1000, 3); len(got) != 1 || got[0].User != "alice" || got[0].TaskID != "t10" || got[0].Port != "ssh" {
		t.Fatalf("%+v", got)
	}
	if got := tb.lookup(1000, 4); len(got) != 0 {
		t.Fatal("another session id")
	}
	// pam_loginuid after pam_tacagent: pending until the process has its ids.
	start(20, "t20")
	if got := tb.lookup(1001, 9); len(got) != 0 {
		t.Fatal("pending is not an answer")
	}
	k[20] = [3]uint64{1001, 9, 7}
	if got := tb.lookup(1001, 9); len(got) != 1 || got[0].TaskID != "t20" {
		t.Fatalf("resolved later: %+v", got)
	}
	// A pid reused before resolution is not the session's.
	k[30] = [3]uint64{unsetAuditID, unsetAuditID, 1}
	start(30, "t30")
	k[30] = [3]uint64{1002, 1, 2}
	if got := tb.lookup(1002, 1); len(got) != 0 {
		t.Fatal("a reused pid resolved a session")
	}
	// STOP ends it; it stays known for the grace period, then goes.
	tb.end("t10")
	if got := tb.lookup(1000, 3); len(got) != 1 || got[0].Ended.IsZero() {
		t.Fatalf("ended: %+v", got)
	}
	now = now.Add(sessionGrace + time.Second)
	if got := tb.lookup(1000, 3); len(got) != 0 {
		t.Fatal("forgotten after the grace")
	}
	// The table is bounded.
	for i := 0; i < maxAuditSessions+10; i++ {
		k[100+i] = [3]uint64{2000, uint64(i), 1}
		start(100+i, "x")
	}
	if len(tb.entries) > maxAuditSessions {
		t.Fatalf("%d entries", len(tb.entries))
	}
	if err := tb.register(99999, localapi.AcctRequest{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a caller without /proc entry is not registered")
	}
}

func TestIsSessionStart(t *testing.T) {
	root, user := localapi.Caller{UID: 0}, localapi.Caller{UID: 1000}
	pam := localapi.AcctRequest{Flags: localapi.FlagStart, User: "a", TaskID: "1", AV: []string{"service=shell"}}
	cmd := localapi.AcctRequest{Flags: localapi.FlagStart, User: "a", TaskID: "1", AV: []string{"service=shell", "cmd=/bin/ls"}}
	if !isSessionStart(root, pam) || isSessionStart(user, pam) || isSessionStart(root, cmd) {
		t.Fatal("only a root caller's START without cmd opens a session")
	}
	pam.Flags = localapi.FlagStop
	if isSessionStart(root, pam) {
		t.Fatal("a STOP opens nothing")
	}
}

// TestSessionsEndpoint: a PAM-like START through the local API registers the caller's session, and GET
// /v1/sessions answers it; its STOP marks it ended.
func TestSessionsEndpoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sessions are registered from root callers only")
	}
	key := []byte("daemon-sessions-key-01")
	srv := startTestServer(t, key)
	d, sock := apiDaemon(t, key, 2*time.Second, srv)
	d.SetAuditIDs(func(pid int) (uint32, uint32, uint64, error) {
		if pid != os.Getpid() {
			return 0, 0, 0, os.ErrNotExist
		}
		return 1000, 42, 1, nil
	})
	c := localapi.NewClient(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Account(ctx, localapi.AcctRequest{Flags: localapi.FlagStart, User: "alice", TaskID: "s-1", Port: "pts/0", RemAddr: "10.1.1.1"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.AuditSessions(ctx, 1000, 42)
	if err != nil || len(got) != 1 || got[0].User != "alice" || got[0].TaskID != "s-1" || got[0].RemAddr != "10.1.1.1" || !got[0].Ended.IsZero() {
		t.Fatalf("%v %+v", err, got)
	}
	if got, err := c.AuditSessions(ctx, 1000, 43); err != nil || len(got) != 0 {
		t.Fatalf("unknown session: %v %+v", err, got)
	}
	if _, err := c.Account(ctx, localapi.AcctRequest{Flags: localapi.FlagStop, User: "alice", TaskID: "s-1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.AuditSessions(ctx, 1000, 42); len(got) != 1 || got[0].Ended.IsZero() {
		t.Fatalf("ended: %+v", got)
	}
}
