package localapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestClientRefusesUntrustedAgent: a socket served by another uid (a local user who took over the path,
// or a stale directory) gets nothing from the Client: not a password, not a record, not a status request.
// The same fake agent, trusted explicitly, is reached: the refusal is the peer check's doing.
func TestClientRefusesUntrustedAgent(t *testing.T) {
	bin := childBinary(t)
	dir, err := os.MkdirTemp("", "localapi-fake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "tacagent.sock")
	const nobody = 65534
	cmd := exec.Command(bin)
	cmd.Env = []string{fakeAgentEnv + "=" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		_ = stdin.Close()
		_ = cmd.Wait()
		t.Fatalf("fake agent: %q %v", line, err)
	}
	ctx := context.Background()
	c := NewClient(sock)
	defer c.Close()
	check := func(what string, err error) {
		t.Helper()
		var e *Error
		if !errors.Is(err, ErrUntrustedAgent) || !errors.As(err, &e) || !strings.Contains(e.Message, "uid 65534") ||
			!strings.Contains(e.Message, "nothing was sent") {
			t.Errorf("%s: %v, want ErrUntrustedAgent naming uid 65534", what, err)
		}
	}
	_, err = c.Authenticate(ctx, AuthenRequest{User: "alice", Type: TypePAP, Password: "hunter2"}, nil)
	check("authenticate", err)
	_, err = c.Account(ctx, AcctRequest{Flags: FlagStart, User: "alice", TaskID: "1"})
	check("account", err)
	_, err = c.Status(ctx)
	check("status", err)
	// The positive control: trusted explicitly, the same fake agent answers.
	trusting := NewClient(sock, WithDaemonUIDs(nobody))
	defer trusting.Close()
	if st, err := trusting.Status(ctx); err != nil || st.Version != "fake" {
		t.Fatalf("a client that trusts uid %d: %+v %v", nobody, st, err)
	}
	_ = stdin.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fake agent: %v", err)
	}
	if got := string(rest); got != "got GET /v1/status 0 bytes\n" {
		t.Fatalf("the fake agent received %q; want only the trusting client's status request", got)
	}
}

// TestClientPermissionDenied: a caller the socket's mode keeps out is told so, with the group to join,
// not that no agent answers.
func TestClientPermissionDenied(t *testing.T) {
	bin := childBinary(t)
	ts := startServer(t, newFakeBackend(), nil)
	if err := os.Chmod(ts.sock, 0o660); err != nil { // root:root, as Listen with group root would leave it
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{childEnv + "=" + ts.sock, childClientEnv + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client child: %v %s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "permission denied on "+ts.sock) || !strings.Contains(s, "not in group root") ||
		!strings.Contains(s, `"forbidden":"true"`) || strings.Contains(s, "no agent") {
		t.Fatalf("got %s", s)
	}
}
