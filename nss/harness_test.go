package nss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// Timing of the tests, named once.
const (
	buildTimeout   = 5 * time.Minute
	commandTimeout = 30 * time.Second // one getent, nsshost or id run
	daemonReady    = 20 * time.Second
	daemonStop     = 30 * time.Second
	pollEvery      = 10 * time.Millisecond
)

const testKey = "nss-test-shared-key-0123456789"

// Accounts of the tests. The template gid is "users" (100 on Debian), a group the daemon outside the
// namespace can name as api.group, so that the mapped users' shells may call the agent (the bash hook).
const (
	uid15, uid1 = 47115, 47101
	gidUsers    = 100
	localUID    = 47200
	localUser   = "tacagent-local"
	localPass   = "local-pw-5"
)

// built is what the one build of a test run produced.
type built struct {
	dir      string
	module   string // libnss_tacagent.so.2
	nsshost  string
	pam      string // pam_tacagent.so
	hook     string // tacagent_hook.so
	fake     string // pam's fakeagent
	tacagent string
	err      error
}

var (
	buildOnce sync.Once
	build     built
)

// require checks what the tests need; a missing piece skips the test saying what is missing, except in CI
// (CI=true, set by .ci/run), where it fails: there everything is installed and the tests must run.
func require(t *testing.T, tools ...string) *built {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (bind mounts in a private mount namespace)")
	}
	for _, tool := range append([]string{"gcc", "make", "unshare", "mount", "ldconfig", "getent"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		// unshare needs CAP_SYS_ADMIN, which some containers drop even for root.
		if out, err := exec.Command("unshare", "-m", "--propagation", "private", "true").CombinedOutput(); err != nil {
			missing = append(missing, fmt.Sprintf("unshare -m working here (%v: %s)", err, bytes.TrimSpace(out)))
		}
	}
	if len(missing) > 0 {
		msg := "the NSS tests need " + strings.Join(missing, ", ") + " (see .ci/run)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	buildOnce.Do(doBuild)
	if build.err != nil {
		t.Fatal(build.err)
	}
	return &build
}

func doBuild() {
	dir, err := os.MkdirTemp("", "nss-tacagent-build-")
	if err != nil {
		build.err = err
		return
	}
	build = built{dir: dir, module: filepath.Join(dir, "libnss_tacagent.so.2"), nsshost: filepath.Join(dir, "nsshost"),
		pam: filepath.Join(dir, "pam_tacagent.so"), hook: filepath.Join(dir, "tacagent_hook.so"),
		fake: filepath.Join(dir, "fakeagent"), tacagent: filepath.Join(dir, "tacagent")}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	for _, args := range [][]string{
		{"make", "-s", "-C", ".", "O=" + dir, "all", "tests"},
		{"make", "-s", "-C", "../pam", "O=" + dir, "all", dir + "/fakeagent"},
		{"make", "-s", "-C", "../bash", "O=" + dir, dir + "/tacagent_hook.so"},
		{"go", "build", "-o", build.tacagent, "../cmd/tacagent"},
	} {
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
	}
	// Others must read the module (every process loads it) and the hook (the users' shells).
	for _, f := range []string{build.module, build.hook} {
		if err := os.Chmod(f, 0o755); err != nil {
			build.err = err
			return
		}
	}
}

func cleanupBuild() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.EventuallyEvery(t, within, pollEvery, what, cond)
}

func freePort(t *testing.T) string { return testkit.FreePort(t) }

// testServer is the project's TACACS+ test server with the users of these tests: alice (priv-lvl 15 at
// the shell start, every command but rm), bob (priv-lvl 3), carol (priv-lvl 0: no template).
func testServer(t *testing.T) *tacplustest.Server {
	t.Helper()
	srv, err := tacplustest.Start(tacplustest.Config{Key: []byte(testKey), SingleConnect: true,
		Users: map[string]tacplustest.User{"alice": {Password: "alice-pw-9"}, "bob": {Password: "bob-pw-9"},
			"carol": {Password: "carol-pw-9"}},
		AuthorRules: []tacplustest.AuthorRule{
			{User: "alice", Service: "shell", Command: "", Permit: true, Args: []string{"priv-lvl=15"}},
			{User: "alice", Service: "shell", Command: `/usr/bin/rm( .*)?`, ServerMsg: "rm is not allowed here"},
			{User: "alice", Service: "shell", Command: ".*", Permit: true},
			{User: "bob", Service: "shell", Command: "", Permit: true, Args: []string{"priv-lvl=3"}},
			{User: "carol", Service: "shell", Command: "", Permit: true, Args: []string{"priv-lvl=0"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// sandbox is a directory whose run/ is bind-mounted on /run and whose etc/ files replace the host's, in
// a private mount namespace made for each command (see run). Everything a mapped user must reach (the
// agent's socket, homes, the bash hook) lives under run/, whose mount root is 0755: the directory itself
// may stay root's.
type sandbox struct {
	dir    string
	socket string // the agent's socket, outside the namespace: run/tacagent/tacagent.sock
	mounts [][2]string
}

// newSandbox prepares the files: nsswitch.conf naming the module, an ld.so.cache that finds it, passwd
// and shadow with one local user, and /run with the privilege separation directory of sshd and homes.
func newSandbox(t *testing.T, b *built) *sandbox {
	t.Helper()
	dir, err := os.MkdirTemp("", "nss-tacagent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// Every process in the namespace, whatever its uid, loads the module from lib/ (the private ld.so.cache
	// names it there): the directory must be searchable by all. What is secret in it is 0600.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &sandbox{dir: dir, socket: filepath.Join(dir, "run", "tacagent", "tacagent.sock")}
	mk := func(p string, mode os.FileMode, uid int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, p), uid, gidUsers); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, text string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, p), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("run", 0o755, 0)
	mk("run/sshd", 0o755, 0)
	mk("run/t", 0o755, 0)
	mk("run/home", 0o755, 0)
	mk("run/home/alice", 0o755, uid15)
	mk("run/home/local", 0o755, localUID)
	mk("etc", 0o755, 0)
	mk("lib", 0o755, 0)
	copyFile(t, b.module, filepath.Join(dir, "lib", "libnss_tacagent.so.2"), 0o755)
	write("etc/nsswitch.conf", "passwd: files tacagent\ngroup: files\nshadow: files\nhosts: files\n", 0o644)
	write("etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n"+filepath.Join(dir, "lib")+"\n", 0o644)
	// -X: no links are made in any directory; -C/-f: only the private cache is written.
	if out, err := exec.Command("ldconfig", "-X", "-C", filepath.Join(dir, "etc/ld.so.cache"), "-f",
		filepath.Join(dir, "etc/ld.so.conf")).CombinedOutput(); err != nil {
		t.Fatalf("ldconfig: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := exec.Command("openssl", "passwd", "-6", "-salt", "nsstestsalt", localPass).Output()
	if err != nil {
		t.Fatalf("openssl passwd: %v", err)
	}
	write("etc/passwd", string(passwd)+fmt.Sprintf("%s:x:%d:%d:local test user:/run/home/local:/bin/sh\n", localUser, localUID, gidUsers), 0o644)
	write("etc/shadow", string(shadow)+fmt.Sprintf("%s:%s:19000:0:99999:7:::\n", localUser, strings.TrimSpace(string(hash))), 0o600)
	s.mounts = [][2]string{{"run", "/run"}, {"etc/nsswitch.conf", "/etc/nsswitch.conf"},
		{"etc/ld.so.cache", "/etc/ld.so.cache"}, {"etc/passwd", "/etc/passwd"}, {"etc/shadow", "/etc/shadow"}}
	// sshd records logins in these (utmp is under /run already): private empty copies keep the host's.
	mk("log", 0o755, 0)
	for _, f := range []string{"wtmp", "btmp", "lastlog"} {
		if _, err := os.Stat("/var/log/" + f); err == nil {
			write("log/"+f, "", 0o600)
			s.mounts = append(s.mounts, [2]string{"log/" + f, "/var/log/" + f})
		}
	}
	return s
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// mount adds a bind mount of the sandbox's path rel on target for the commands started from now on.
func (s *sandbox) mount(rel, target string) { s.mounts = append(s.mounts, [2]string{rel, target}) }

// command is a command that will run inside a fresh private mount namespace with the sandbox's mounts.
func (s *sandbox) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, m := range s.mounts {
		fmt.Fprintf(&script, "mount --bind '%s' '%s'\n", filepath.Join(s.dir, m[0]), m[1])
	}
	script.WriteString(`exec "$@"` + "\n")
	full := append([]string{"-m", "--propagation", "private", "--", "/bin/sh", "-c", script.String(), "sh", name}, args...)
	return exec.CommandContext(ctx, "unshare", full...)
}

// result is one finished command.
type result struct {
	code int
	out  string // stdout
	err  string // stderr
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
}

// run runs a command in the namespace; one that does not end within commandTimeout fails the test.
func (s *sandbox) run(t *testing.T, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := s.command(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within %s:\n%s", name, args, commandTimeout, errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", name, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), out: out.String(), err: errb.String()}
}

// daemon is a running `tacagent run` (internal/testkit).
type daemon struct {
	*testkit.Daemon
	t *testing.T
}

// startDaemon runs the daemon with one server at addr, its socket in the sandbox's run/tacagent (so that
// /run/tacagent/tacagent.sock names it in the namespace), the templates tacacs15 (level 15) and tacacs1
// (1-14), and waits until it serves.
func startDaemon(t *testing.T, b *built, s *sandbox, addr string) *daemon {
	t.Helper()
	nss := fmt.Sprintf(`nss:
  accounts:
    - {name: tacacs15, priv_lvl: "15", uid: %d, gid: %d, gecos: "TACACS+ %%u", home: /run/home/%%u, shell: /bin/bash}
    - {name: tacacs1, priv_lvl: "1-14", uid: %d, gid: %d, home: /run/home/tacacs1, shell: /bin/sh}
`, uid15, gidUsers, uid1, gidUsers)
	d := testkit.StartDaemon(t, testkit.DaemonOptions{Binary: b.tacagent, Key: testKey,
		Servers: testkit.ServerEntry("primary", addr, "timeout: 2s", "connect_timeout: 1s"), Extra: nss,
		Socket: s.socket, API: "  mode: \"0660\"\n  group: users\n", Ready: daemonReady, StopWithin: daemonStop})
	return &daemon{Daemon: d, t: t}
}

type syncBuffer = testkit.SyncBuffer

// metric returns the value of one sample of the daemon's /metrics ("name{labels}"), 0 when absent.
func (d *daemon) metric(sample string) float64 {
	text := d.MetricsText()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return 0
}
