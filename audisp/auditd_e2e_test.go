package audisp_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/daemon"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// e2eAUID is the login uid the test's session gets; the rules audit only it, so no other process on the
// machine is recorded.
const e2eAUID = "4242"

// TestRealAuditd runs the real auditd with the plugin (the built tacagent binary, started by auditd with
// format=string), a daemon that reads its callers' audit ids from /proc, and a shell whose login uid the
// test sets as pam_loginuid would: its PAM-like START registers the session, and its commands must reach
// the test server. It changes the kernel's audit state (enables auditing, adds rules), so it runs only
// with TACAGENT_E2E_AUDITD=1, as root, when no other auditd runs; it puts the state back at the end.
func TestRealAuditd(t *testing.T) {
	if os.Getenv("TACAGENT_E2E_AUDITD") != "1" {
		t.Skip("set TACAGENT_E2E_AUDITD=1 to run auditd (changes the kernel's audit state while it runs)")
	}
	auditd, err1 := exec.LookPath("auditd")
	auditctl, err2 := exec.LookPath("auditctl")
	if os.Geteuid() != 0 || err1 != nil || err2 != nil {
		t.Skip("needs root, auditd and auditctl")
	}
	st, err := exec.Command(auditctl, "-s").CombinedOutput()
	if err != nil {
		t.Skipf("the kernel audit interface does not answer: %v %s", err, st)
	}
	if !strings.Contains(string(st), "\npid 0\n") {
		t.Skipf("another auditd runs:\n%s", st)
	}
	enabledBefore := strings.Contains(string(st), "enabled 1")

	dir := t.TempDir()
	bin := filepath.Join(dir, "tacagent")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tacagent/tacagent/cmd/tacagent").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv := startServer(t)
	sock := filepath.Join(dir, "tacagent.sock")
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
	if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
		t.Fatal(err)
	}

	// auditd's configuration: no log file, only the plugin.
	plugins := filepath.Join(dir, "plugins.d")
	if err := os.Mkdir(plugins, 0o750); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("local_events = yes\nwrite_logs = no\nlog_format = ENRICHED\nflush = NONE\nq_depth = 2000\n"+
		"overflow_action = SYSLOG\nmax_restarts = 2\nplugin_dir = %s\nend_of_event_timeout = 2\n"+
		"space_left = 2\nadmin_space_left = 1\ndisk_full_action = IGNORE\ndisk_error_action = IGNORE\n", plugins)
	plugin := fmt.Sprintf("active = yes\ndirection = out\npath = %s\ntype = always\nargs = audisp --socket=%s\nformat = string\n", bin, sock)
	if err := os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "tacagent.conf"), []byte(plugin), 0o640); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	ad := exec.Command(auditd, "-f", "-n", "-c", dir)
	ad.Stdout, ad.Stderr = &out, &out
	if err := ad.Start(); err != nil {
		t.Fatal(err)
	}
	adDone := make(chan error, 1)
	go func() { adDone <- ad.Wait() }()
	t.Cleanup(func() {
		_ = exec.Command(auditctl, "-D").Run()
		_ = ad.Process.Signal(syscall.SIGTERM)
		select {
		case <-adDone:
		case <-time.After(20 * time.Second):
			_ = ad.Process.Kill()
			<-adDone
		}
		if !enabledBefore {
			_ = exec.Command(auditctl, "-e", "0").Run()
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("auditd output:\n%s", out.String())
			for _, r := range srv.Accounting() {
				t.Logf("record: %s %s %q", r.User, r.TaskID, r.Args)
			}
		}
	})
	waitFor(t, "auditd registered with the kernel", func() bool {
		s, _ := exec.Command(auditctl, "-s").Output()
		return !strings.Contains(string(s), "\npid 0\n")
	})
	for _, rule := range [][]string{
		// The CLI that opens the session is not a command of it.
		{"-a", "never,exit", "-F", "arch=b64", "-F", "exe=" + bin},
		{"-a", "always,exit", "-F", "arch=b64", "-S", "execve,execveat", "-F", "auid=" + e2eAUID, "-k", "tacagent_exec"},
		{"-a", "always,exit", "-F", "arch=b64", "-S", "exit_group", "-F", "auid=" + e2eAUID, "-k", "tacagent_exit"},
	} {
		if o, err := exec.Command(auditctl, rule...).CombinedOutput(); err != nil {
			t.Fatalf("auditctl %q: %v %s", rule, err, o)
		}
	}

	// The session: set the login uid as pam_loginuid does, send the PAM-like START (the daemon reads
	// this shell's child's /proc ids), then run commands.
	script := fmt.Sprintf(`echo %s > /proc/self/loginuid || exit 9
%s --socket %s account start --user alice --task-id pam-e2e || exit 8
/bin/ls / > /dev/null
/bin/sh -c 'exit 3'
/bin/true --password=hunter2 done
`, e2eAUID, bin, sock)
	sh := exec.Command("/bin/bash", "-c", script)
	if o, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("session: %v\n%s", err, o)
	}
	want := func(cmd string, flags tacplus.AcctFlag, pair string) func() bool {
		return func() bool {
			for _, r := range srv.Accounting() {
				if r.Flags&flags != 0 && r.User == "alice" && has(r, "cmd="+cmd) && (pair == "" || has(r, pair)) {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, "ls START and STOP", func() bool {
		return want("/usr/bin/ls", tacplus.AcctFlagStart, "cmd-arg=/")() && want("/usr/bin/ls", tacplus.AcctFlagStop, "status=0")()
	})
	waitFor(t, "sh exit 3", want("/usr/bin/dash", tacplus.AcctFlagStop, "status=3"))
	waitFor(t, "true with its password masked", want("/usr/bin/true", tacplus.AcctFlagStart, "cmd-arg=--password=***"))
	for _, r := range srv.Accounting() {
		if strings.Contains(strings.Join(r.Args, " "), "hunter2") {
			t.Fatalf("a secret reached the server: %q", r.Args)
		}
		if r.TaskID != "pam-e2e" && !has(r, "session_task_id*pam-e2e") {
			t.Fatalf("a record outside the session: %q", r.Args)
		}
	}
	var n int
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		n++
	}
	t.Logf("auditd + plugin: %d records at the server; auditd wrote %d lines", len(srv.Accounting()), n)
}
