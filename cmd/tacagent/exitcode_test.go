package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestExitCodes pins every exit status docs/cli.md documents, with the message a user sees.
func TestExitCodes(t *testing.T) {
	srv := testServer(t, tacplustest.Config{Users: users, SingleConnect: true, AuthorRules: []tacplustest.AuthorRule{
		{User: "alice", Command: "", Permit: true, Args: []string{"priv-lvl=15"}}, // the shell start
		{User: "alice", Command: "show( .*)?", Permit: true},
	}})
	d := startDaemon(t, serverEntry("primary", srv.Addr()), "")
	for _, c := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		output string // in stdout or stderr
	}{
		{"version flag", "", []string{"--version"}, exitOK, "tacagent "},
		{"version command", "", []string{"version"}, exitOK, "tacagent "},
		{"shell start permitted", "", []string{"authorize", "--user", "alice", "-v"}, exitOK, "priv-lvl=15"},
		{"command permitted", "", []string{"authorize", "--user", "alice", "--", "show", "clock"}, exitOK, "permit"},
		{"command denied", "", []string{"authorize", "--user", "alice", "--", "reload"}, exitFail, "authorization denied"},
		{"shell start denied", "", []string{"authorize", "--user", "bob"}, exitFail, "authorization denied"},
		{"login failed", "wrong\n", []string{"login", "--user", "bob", "--type", "pap"}, exitFail, "authentication failed"},
		{"login ok", "bob-pw\n", []string{"login", "--user", "bob", "--type", "pap"}, exitOK, "login ok"},
		{"no user", "", []string{"authorize", "--", "show"}, exitUsage, "--user is required"},
		{"bad flag", "", []string{"status", "--colour"}, exitUsage, "unknown flag: --colour"},
		{"no command", "", nil, exitUsage, "Usage"},
		{"no agent", "", []string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "status"}, exitError, "no agent answers"},
		{"bad config", "", []string{"run", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, exitConfig, "missing.yaml"},
	} {
		args := c.args
		if len(args) > 0 && args[0] != "--socket" && args[0] != "run" {
			args = append([]string{"--socket", d.Socket}, args...)
		}
		code, out, errOut := runCLI(t, c.stdin, args...)
		if code != c.code || !strings.Contains(out+errOut, c.output) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and %q", c.name, code, out, errOut, c.code, c.output)
		}
	}
	// "shell start permitted" went out as service=shell cmd= (empty): without cmd= the agent refuses a
	// shell authorization itself (RFC 8907 section 8.2), which was the exit 78 of issue 19.
}

// TestPermissionDeniedNamesTheGroup: a user outside api.group is told which group it needs and exits 2;
// a member of the group is served.
func TestPermissionDeniedNamesTheGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon gives its socket a group and the CLI runs as another user")
	}
	srv := testServer(t, tacplustest.Config{Users: users, SingleConnect: true})
	d := startDaemonEdited(t, serverEntry("primary", srv.Addr()), "", func(y string) string {
		return strings.Replace(y, "  mode: \"0600\"\n", "  mode: \"0660\"\n  group: adm\n", 1)
	})
	// The other user must reach the binary and the socket's directory (the socket itself is 0660 root:adm).
	for _, dir := range []string{filepath.Dir(binary), d.Dir, filepath.Dir(d.Dir)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	as := func(groups ...uint32) (int, string) {
		cmd := exec.Command(binary, "--socket", d.Socket, "status")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), o.String() + e.String()
	}
	code, out := as()
	if code != exitError || !strings.Contains(out, "permission denied") || !strings.Contains(out, "not in group adm") {
		t.Errorf("outside the group: exit %d, output %q; want %d naming group adm", code, out, exitError)
	}
	if code, out := as(4); code != exitOK || !strings.Contains(out, "primary") { // gid 4 is adm
		t.Errorf("a member of adm: exit %d, output %q", code, out)
	}
}

// TestStatusCountsThroughTheDaemon: requests held by a slow server show in status as in flight and
// queued (max_in_flight 1), not as zeros, in the text and in --json.
func TestStatusCountsThroughTheDaemon(t *testing.T) {
	slowUsers := map[string]tacplustest.User{"bob": users["bob"], "slow": {Password: "slow-pw", Delay: 3 * time.Second}}
	srv := testServer(t, tacplustest.Config{Users: slowUsers, SingleConnect: true})
	d := startDaemon(t, serverEntry("primary", srv.Addr(), "max_in_flight: 1"), "")
	c := localapi.NewClient(d.Socket)
	defer c.Close()
	if _, err := c.Authenticate(context.Background(), localapi.AuthenRequest{User: "bob", Type: localapi.TypePAP, Password: "bob-pw"}, nil); err != nil {
		t.Fatal(err) // negotiated: the slow logins below share the connection
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := c.Authenticate(ctx, localapi.AuthenRequest{User: "slow", Type: localapi.TypePAP, Password: "slow-pw"}, nil); err != nil {
				t.Errorf("slow login: %v", err)
			}
		}()
	}
	var st localapi.Status
	eventually(t, 15*time.Second, "status --json with one in flight and one queued", func() bool {
		code, out, _ := d.cli("", "status", "--json")
		st = localapi.Status{}
		return code == exitOK && json.Unmarshal([]byte(out), &st) == nil && len(st.Servers) == 1 &&
			st.Servers[0].InFlight+st.Servers[0].Queued == 2 && st.Servers[0].Queued >= 1
	})
	s := st.Servers[0]
	if s.Name != "primary" || s.Addr != srv.Addr() || s.State != "up" || s.Since.IsZero() {
		t.Errorf("status server %+v", s)
	}
	wg.Wait()
	code, out, _ := d.cli("", "status")
	if code != exitOK || !strings.Contains(out, "primary") || !strings.Contains(out, " ago") {
		t.Errorf("status text: exit %d\n%s", code, out)
	}
}
