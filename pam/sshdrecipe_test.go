package pam

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// startDaemonGroups runs the daemon with two servers in two groups, "first" (at firstAddr) and "core" (at
// coreAddr), plus the authentication section auth, and waits until it serves.
func startDaemonGroups(t *testing.T, b *built, firstAddr, coreAddr, auth string) *daemon {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, socket: filepath.Join(dir, "tacagent.sock"), metrics: freePort(t), stderr: &syncBuffer{},
		done: make(chan error, 1)}
	server := func(name, addr string) string {
		return fmt.Sprintf("  - name: %s\n    address: %s\n    key_file: %s\n    timeout: 2s\n    connect_timeout: 1s\n", name, addr, keyFile)
	}
	yaml := "servers:\n" + server("s-first", firstAddr) + server("s-core", coreAddr) +
		"groups:\n  - name: first\n    servers: [s-first]\n  - name: core\n    servers: [s-core]\n" +
		fmt.Sprintf("metrics:\n  address: %s\napi:\n  socket: %s\n  mode: \"0600\"\nlog:\n  level: debug\n", d.metrics, d.socket) +
		fmt.Sprintf("accounting:\n  spool:\n    path: %s\n", filepath.Join(dir, "spool.db")) +
		"authentication:\n  failure_limit:\n    max: 0\n" + auth
	cfg := filepath.Join(dir, "tacagent.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(b.tacagent, "run", "--config", cfg)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(d.stop)
	eventually(t, daemonReady, "the daemon's socket and /healthz", func() bool {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("the daemon exited early: %v\n%s", err, d.stderr.String())
		default:
		}
		_, err := os.Stat(d.socket)
		return err == nil && httpGet("http://"+d.metrics+"/healthz") != ""
	})
	return d
}

// TestSSHDRecipeFailIsFinal is the end-to-end test of docs/pam.md's sshd recipe (issue 13 point 1): the
// real module and daemon, an earlier line that is unavailable (a sufficient PAM line, and a first server
// group that is unreachable inside the daemon's stack), then the TACACS+ server says FAIL, and a local
// line after the module that WOULD succeed. The login must be denied, and the local line must never run:
// it is pam_exec running a script that leaves a marker file, so the test sees whether it was consulted.
// The control cases show the marker works: when every server is unreachable the local line runs and
// lets the user in.
func TestSSHDRecipeFailIsFinal(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	dead, dead2 := freePort(t), freePort(t) // nothing listens there: connection refused, unreachable

	dir := t.TempDir()
	marker := filepath.Join(dir, "local-consulted")
	script := filepath.Join(dir, "local-password.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$PAM_USER\" >> "+marker+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	consulted := func() string {
		b, err := os.ReadFile(marker)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(b)
	}

	stacks := []struct {
		name      string
		first     string // the first group's server
		core      string // the core group's server
		auth      string // the daemon's authentication.stack
		wrongCode string // what pamtester prints for a wrong password
	}{
		// The field report's shape: "tacacs sufficient" lines. The first group is unreachable (ignored),
		// core says FAIL (ignored): nothing decided, which is a denial (PAM_PERM_DENIED in libpam; "fail"
		// on the wire, PAM_AUTH_ERR from the module), never unavailable.
		{"sufficient groups", dead, srv.Addr(), "  stack:\n    - tacacs: first\n      control: sufficient\n    - tacacs: core\n      control: sufficient\n", msgAuthFail},
		// The default stack: the network-gear rule over both groups.
		{"default stack", dead, srv.Addr(), "", msgAuthFail},
	}
	for _, st := range stacks {
		t.Run(st.name, func(t *testing.T) {
			d := startDaemonGroups(t, b, st.first, st.core, st.auth)
			svc := service(t, b,
				"auth sufficient pam_debug.so auth=authinfo_unavail", // an earlier line, unavailable
				moduleLine("auth", "[success=done authinfo_unavail=ignore default=die]", d.socket, "protocol=pap"),
				"auth [success=done default=die] pam_exec.so quiet "+script) // the local password: would succeed
			for _, c := range []struct {
				name, stdin string
				code        int
				want        string
			}{
				{"TACACS+ FAIL is final", "wrong-pw-0x\n", 1, st.wrongCode},
				{"TACACS+ PASS", "bob-pw-K3\n", 0, msgAuthOK},
			} {
				t.Run(c.name, func(t *testing.T) {
					_ = os.Remove(marker)
					r := pamtester(t, c.stdin, nil, svc, "bob", "authenticate")
					if r.code != c.code || !strings.Contains(r.out, c.want) {
						t.Fatalf("want exit %d and %q, got %s\ndaemon log:\n%s", c.code, c.want, r, d.stderr.String())
					}
					if got := consulted(); got != "" {
						t.Fatalf("the local password line was consulted (%q) after TACACS+ answered: %s", got, r)
					}
					noSecrets(t, "pamtester's output", r.out)
				})
			}
		})
	}

	// Control: every server unreachable. The default stack says unavailable, the module
	// PAM_AUTHINFO_UNAVAIL, and the recipe falls through to the local line, which runs and lets bob in.
	t.Run("every server unreachable falls back", func(t *testing.T) {
		d := startDaemonGroups(t, b, dead, dead2, "")
		svc := service(t, b,
			"auth sufficient pam_debug.so auth=authinfo_unavail",
			moduleLine("auth", "[success=done authinfo_unavail=ignore default=die]", d.socket, "protocol=pap"),
			"auth [success=done default=die] pam_exec.so quiet "+script)
		_ = os.Remove(marker)
		r := pamtester(t, "bob-pw-K3\n", nil, svc, "bob", "authenticate")
		if r.code != 0 || !strings.Contains(r.out, msgAuthOK) {
			t.Fatalf("want the local fallback to let bob in, got %s\ndaemon log:\n%s", r, d.stderr.String())
		}
		if got := consulted(); strings.TrimSpace(got) != "bob" {
			t.Fatalf("the local line was not consulted (marker %q): %s", got, r)
		}
		if !strings.Contains(r.out, msgUnavailable) && !strings.Contains(d.stderr.String(), "unavailable") {
			t.Logf("note: neither pamtester nor the daemon log says unavailable: %s", r)
		}
	})
}
