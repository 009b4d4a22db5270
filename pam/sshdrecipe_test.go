package pam

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/internal/testkit"
)

// startDaemonGroups runs the daemon with two servers in two groups, "first" (at firstAddr) and "core" (at
// coreAddr), plus the authentication section auth, and waits until it serves.
func startDaemonGroups(t *testing.T, b *built, firstAddr, coreAddr, auth string) *daemon {
	t.Helper()
	servers := testkit.ServerEntry("s-first", firstAddr, "timeout: 2s", "connect_timeout: 1s") +
		testkit.ServerEntry("s-core", coreAddr, "timeout: 2s", "connect_timeout: 1s")
	return startDaemonServers(t, b, servers, "groups:\n  - name: first\n    servers: [s-first]\n  - name: core\n    servers: [s-core]\n"+
		"authentication:\n  failure_limit:\n    max: 0\n"+auth)
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
				moduleLine("auth", "[success=done authinfo_unavail=ignore default=die]", d.Socket, "protocol=pap"),
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
						t.Fatalf("want exit %d and %q, got %s\ndaemon log:\n%s", c.code, c.want, r, d.Stderr.String())
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
			moduleLine("auth", "[success=done authinfo_unavail=ignore default=die]", d.Socket, "protocol=pap"),
			"auth [success=done default=die] pam_exec.so quiet "+script)
		_ = os.Remove(marker)
		r := pamtester(t, "bob-pw-K3\n", nil, svc, "bob", "authenticate")
		if r.code != 0 || !strings.Contains(r.out, msgAuthOK) {
			t.Fatalf("want the local fallback to let bob in, got %s\ndaemon log:\n%s", r, d.Stderr.String())
		}
		if got := consulted(); strings.TrimSpace(got) != "bob" {
			t.Fatalf("the local line was not consulted (marker %q): %s", got, r)
		}
		if !strings.Contains(r.out, msgUnavailable) && !strings.Contains(d.Stderr.String(), "unavailable") {
			t.Logf("note: neither pamtester nor the daemon log says unavailable: %s", r)
		}
	})
}
