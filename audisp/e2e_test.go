package audisp_test

// End to end: recorded auditd output is fed through a pipe, as auditd feeds its plugins, to the plugin,
// which talks to a real daemon over its local API socket; the records are checked where they land, at the
// project's TACACS+ test server.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/audisp"
	"github.com/tacagent/tacagent/daemon"
	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testKey = []byte("audisp-e2e-key-0123")

// The session the fake kernel reports for the PAM START: the auid and session id of the recorded
// capture real/enriched-exec-exit-abend.log.
const (
	capAUID = 1000
	capSES  = 4
)

type syncBuffer = testkit.SyncBuffer

func startServer(t *testing.T) *tacplustest.Server {
	t.Helper()
	srv, err := tacplustest.Start(tacplustest.Config{Key: testKey, SingleConnect: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// startDaemon runs a daemon over srv whose fake kernel gives every caller (capAUID, capSES), registers
// alice's PAM session (the START the PAM module sends at open_session), and serves the local API on sock.
func startDaemon(t *testing.T, srv *tacplustest.Server, sock string) *daemon.Daemon {
	t.Helper()
	d := newDaemon(t, srv)
	registerSession(t, d)
	if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
		t.Fatal(err)
	}
	return d
}

func newDaemon(t *testing.T, srv *tacplustest.Server) *daemon.Daemon {
	t.Helper()
	d, err := daemon.New(daemon.Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: testKey, Timeout: 5 * time.Second}}},
		Groups: []string{"default"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	d.SetAuditIDs(func(int) (uint32, uint32, uint64, error) { return capAUID, capSES, 1, nil })
	return d
}

// registerSession sends alice's PAM session START as the PAM module would (a root caller).
func registerSession(t *testing.T, d *daemon.Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := d.Backend().Account(ctx, localapi.Caller{UID: 0, PID: os.Getpid()}, localapi.AcctRequest{Flags: localapi.FlagStart,
		User: "alice", TaskID: "pam-1", Port: "ssh", RemAddr: "10.0.0.9", AV: []string{"service=shell"}})
	if err != nil {
		t.Fatal(err)
	}
}

func captures(t *testing.T, names ...string) []byte {
	t.Helper()
	var b []byte
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join("testdata", "real", n))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, data...)
	}
	return b
}

// feed writes data into a pipe, as auditd does, and returns its read end; the write end is closed when
// everything was written (auditd stopping).
func feed(t *testing.T, data []byte) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	go func() {
		_, _ = w.Write(data)
		w.Close()
	}()
	return r
}

func newPlugin(t *testing.T, sock string, log *syncBuffer, tune func(*audisp.Config)) *audisp.Plugin {
	t.Helper()
	m, err := audisp.NewMasker(audisp.DefaultSecretPatterns, audisp.DefaultSecretFlags)
	if err != nil {
		t.Fatal(err)
	}
	cfg := audisp.Config{Client: localapi.NewClient(sock), Log: zerolog.New(log), Masker: m, BootID: "6113e20e",
		Alive: func(string, int) bool { return true }, DrainTimeout: 30 * time.Second}
	if tune != nil {
		tune(&cfg)
	}
	p, err := audisp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func args(r tacplustest.AcctRecord, prefix string) []string {
	var out []string
	for _, a := range r.Args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			out = append(out, v)
		}
	}
	return out
}

func has(r tacplustest.AcctRecord, pair string) bool {
	for _, a := range r.Args {
		if a == pair {
			return true
		}
	}
	return false
}

// TestRecordedStreamReachesServer: the commands of alice's session (auid 1000, ses 4) become START and
// STOP records at the server, with arguments, statuses and masking; another session's commands (auid
// 1001, the second capture) send nothing.
func TestRecordedStreamReachesServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the session table takes PAM STARTs from root callers only")
	}
	srv := startServer(t)
	sock := filepath.Join(t.TempDir(), "tacagent.sock")
	startDaemon(t, srv, sock)
	var log syncBuffer
	p := newPlugin(t, sock, &log, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Run(ctx, feed(t, captures(t, "enriched-exec-exit-abend.log", "enriched-args-pam.log"))); err != nil {
		t.Fatal(err)
	}
	if n := p.Stats.MalformedTotal(); n != 0 || p.Stats.Dropped.Load() != 0 || p.Stats.Failed.Load() != 0 {
		t.Fatalf("malformed %v, dropped %d, failed %d\n%s", p.Stats.Malformed(), p.Stats.Dropped.Load(), p.Stats.Failed.Load(), log.String())
	}
	starts := map[string]tacplustest.AcctRecord{}
	stops := map[string]tacplustest.AcctRecord{}
	for _, r := range srv.Accounting() {
		if r.TaskID == "pam-1" {
			continue
		}
		if r.User != "alice" || r.RemAddr != "10.0.0.9" {
			t.Fatalf("record of %q from %q: %+v", r.User, r.RemAddr, r)
		}
		cmd := args(r, "cmd=")
		if len(cmd) != 1 {
			t.Fatalf("no cmd: %q", r.Args)
		}
		switch {
		case r.Flags&tacplus.AcctFlagStart != 0:
			starts[r.TaskID] = r
		case r.Flags&tacplus.AcctFlagStop != 0:
			stops[r.TaskID] = r
		}
		if strings.Contains(cmd[0], "seq") || strings.Contains(cmd[0], "/usr/bin/su") {
			t.Fatalf("a command of another session was accounted: %q", r.Args)
		}
	}
	byCmd := func(cmd string) (tacplustest.AcctRecord, tacplustest.AcctRecord) {
		for id, s := range starts {
			if args(s, "cmd=")[0] == cmd {
				return s, stops[id]
			}
		}
		t.Fatalf("no START for %s among %d", cmd, len(starts))
		return tacplustest.AcctRecord{}, tacplustest.AcctRecord{}
	}
	ls, lsStop := byCmd("/usr/bin/ls")
	if strings.Join(args(ls, "cmd-arg="), " ") != "-l /tmp/auditcap" || !has(ls, "service=shell") || !has(ls, "session_task_id*pam-1") {
		t.Fatalf("ls START: %q", ls.Args)
	}
	if !has(lsStop, "status=0") || lsStop.TaskID != ls.TaskID || !strings.HasPrefix(ls.TaskID, "6113e20e-1796504784-") {
		t.Fatalf("ls STOP: %q (task %s)", lsStop.Args, ls.TaskID)
	}
	tr, trStop := byCmd("/usr/bin/true")
	if strings.Join(args(tr, "cmd-arg="), " ") != "--token *** https://bob:***@example.com/x" || !has(trStop, "status=0") {
		t.Fatalf("masking: %q", tr.Args)
	}
	var sawExit3, sawSegv bool
	for id, s := range starts {
		st, ok := stops[id]
		if !ok {
			t.Errorf("START without STOP: %q", s.Args)
			continue
		}
		sawExit3 = sawExit3 || has(st, "status=3") && strings.Join(args(s, "cmd-arg="), " ") == "-c exit 3"
		sawSegv = sawSegv || has(st, "status=-11")
	}
	if !sawExit3 || !sawSegv {
		t.Fatalf("exit 3 seen %v, SIGSEGV seen %v", sawExit3, sawSegv)
	}
	for _, secret := range []string{"hunter3", "hunter4"} {
		if strings.Contains(log.String(), secret) {
			t.Fatalf("a secret in the log")
		}
		for _, r := range srv.Accounting() {
			if strings.Contains(strings.Join(r.Args, " "), secret) {
				t.Fatalf("a secret reached the server: %q", r.Args)
			}
		}
	}
	t.Logf("%d STARTs, %d STOPs at the server", len(starts), len(stops))
}

// TestAgentDownDropsAreCountedAndReported: with no agent, the plugin reads all its input without waiting,
// keeps what its queue holds, drops the rest and counts it; once the agent is back, the queued commands
// are sent and the first record carries the count.
func TestAgentDownDropsAreCountedAndReported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the session table takes PAM STARTs from root callers only")
	}
	srv := startServer(t)
	sock := filepath.Join(t.TempDir(), "tacagent.sock")
	var log syncBuffer
	p := newPlugin(t, sock, &log, func(c *audisp.Config) {
		c.QueueSize, c.RetryMin, c.RetryMax = 4, 5*time.Millisecond, 50*time.Millisecond
	})
	data := captures(t, "enriched-exec-exit-abend.log")
	lines := uint64(bytes.Count(data, []byte("\n")))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { done <- p.Run(ctx, r) }()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every line read while the agent is down", func() bool { return p.Stats.Lines.Load() == lines })
	waitFor(t, "drops", func() bool { return p.Stats.Dropped.Load() > 0 })
	dropped := p.Stats.Dropped.Load()
	startDaemon(t, srv, sock)
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var carried []string
	for _, rec := range srv.Accounting() {
		carried = append(carried, args(rec, "audisp_dropped*")...)
	}
	if len(carried) != 1 || carried[0] != fmt.Sprint(dropped) {
		t.Fatalf("dropped %d, carried %q\n%s", dropped, carried, log.String())
	}
	if !strings.Contains(log.String(), `"dropped":`+fmt.Sprint(dropped)) || !strings.Contains(log.String(), "the agent is unreachable") {
		t.Fatalf("the drop is logged:\n%s", log.String())
	}
	if p.Stats.Sent.Load() == 0 {
		t.Fatal("the queued facts were sent once the agent was back")
	}
	t.Logf("queue 4: %d lines read with the agent down, %d facts dropped, %d records sent after", lines, dropped, p.Stats.Sent.Load())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.EventuallyEvery(t, 30*time.Second, 5*time.Millisecond, what, cond)
}

// TestUserStartClearsNegativeAnswer: a command that ran before the session's PAM START reached the agent
// (pam_motd's scripts) is not accounted, and the "not a TACACS+ session" answer it left is forgotten at the
// session's USER_START record, so the session's commands after it are.
func TestUserStartClearsNegativeAnswer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the session table takes PAM STARTs from root callers only")
	}
	srv := startServer(t)
	sock := filepath.Join(t.TempDir(), "tacagent.sock")
	d := newDaemon(t, srv)
	if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	p := newPlugin(t, sock, &log, func(c *audisp.Config) { c.NegativeTTL = time.Hour })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, r) }()
	exec := func(serial int, exe string) string {
		return fmt.Sprintf("type=SYSCALL msg=audit(1796504800.000:%d): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=%d auid=%d uid=0 tty=pts0 ses=%d comm=\"x\" exe=\"%s\"\n"+
			"type=EXECVE msg=audit(1796504800.000:%d): argc=1 a0=\"x\"\ntype=EOE msg=audit(1796504800.000:%d):\n", serial, 5000+serial, capAUID, capSES, exe, serial, serial)
	}
	if _, err := w.WriteString(exec(1, "/usr/bin/motd-script")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the early command asked about and ignored", func() bool { return p.Stats.Ignored.Load() == 1 })
	registerSession(t, d)
	if _, err := w.WriteString(exec(2, "/usr/bin/still-negative")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cached answer used", func() bool { return p.Stats.Ignored.Load() == 2 })
	userStart := fmt.Sprintf("type=USER_START msg=audit(1796504800.100:3): pid=77 uid=0 auid=%d ses=%d msg='op=PAM:session_open grantors=pam_tacagent acct=\"alice\" exe=\"/usr/sbin/sshd\" hostname=10.0.0.9 addr=10.0.0.9 terminal=ssh res=success'\n", capAUID, capSES)
	if _, err := w.WriteString(userStart + exec(4, "/usr/bin/after-login")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, rec := range srv.Accounting() {
		cmds = append(cmds, args(rec, "cmd=")...)
	}
	if strings.Join(cmds, " ") != "/usr/bin/after-login" {
		t.Fatalf("accounted: %q", cmds)
	}
}
