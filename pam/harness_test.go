package pam

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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
	// buildTimeout bounds building the module, the C helpers and the tacagent binary.
	buildTimeout = 5 * time.Minute
	// commandTimeout bounds one pamtester or pamhost run: a hang is a failure, not a stuck CI.
	commandTimeout = 60 * time.Second
	// daemonReady bounds the daemon's start (socket and /healthz).
	daemonReady = 20 * time.Second
	// daemonStop bounds the daemon's exit after SIGTERM.
	daemonStop = 30 * time.Second
	// moduleTimeout is the timeout= option of the stacks that test a dead or hanging agent ...
	moduleTimeout = time.Second
	// ... and returnSlack what a return may take beyond it (process start, PAM, loaded CI machine).
	returnSlack = 3 * time.Second
	pollEvery   = 10 * time.Millisecond
)

const testKey = "pam-test-shared-key-0123456789"

// built is what the one build of a test run produced.
type built struct {
	dir      string // temporary directory holding everything below
	module   string // pam_tacagent.so
	unittest string // the C unit test of the JSON and HTTP code
	pamhost  string // the forking PAM host
	fake     string // the fake agent of peer_test.go (src/fakeagent.c)
	tacagent string // the daemon binary
	err      error
}

var (
	buildOnce sync.Once
	build     built
)

// prerequisites lists what the tests need from the machine; .ci/run installs the packages.
func prerequisites() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the tests write /etc/pam.d service files)")
	}
	for _, tool := range []string{"pamtester", "gcc", "make", "valgrind"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/usr/include/security/pam_modules.h"); err != nil {
		missing = append(missing, "libpam0g-dev (/usr/include/security/pam_modules.h)")
	}
	return missing
}

// requirePAM is the one place that checks these tests can run here. A missing prerequisite fails the test
// with the list of what is missing (they need root and system packages, which .ci/run installs): a PAM test
// is never skipped.
func requirePAM(t *testing.T) *built {
	t.Helper()
	if missing := prerequisites(); len(missing) > 0 {
		msg := "the PAM tests need " + strings.Join(missing, ", ") +
			" (as root: apt-get install pamtester libpam0g-dev valgrind gcc make; see .ci/run)"
		t.Fatal(msg)
	}
	buildOnce.Do(doBuild)
	if build.err != nil {
		t.Fatal(build.err)
	}
	return &build
}

func doBuild() {
	dir, err := os.MkdirTemp("", "pam-tacagent-test-")
	if err != nil {
		build.err = err
		return
	}
	// PAM refuses modules in directories others can write to; the default 0700 of MkdirTemp is fine, but
	// pamtester's user (root) must traverse it.
	build = built{dir: dir, module: filepath.Join(dir, "pam_tacagent.so"), unittest: filepath.Join(dir, "unittest"),
		pamhost: filepath.Join(dir, "pamhost"), fake: filepath.Join(dir, "fakeagent"), tacagent: filepath.Join(dir, "tacagent")}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	for _, args := range [][]string{
		{"make", "-s", "-C", ".", "O=" + dir, "all", "tests"},
		{"go", "build", "-o", build.tacagent, "../cmd/tacagent"},
	} {
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
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

func randomName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) string { return testkit.FreePort(t) }

// service writes /etc/pam.d/tacagent-test-<random> with the given lines, in which MODULE stands for the
// built module's path, and removes it when the test ends. It returns the service name.
func service(t *testing.T, b *built, lines ...string) string {
	t.Helper()
	name := "tacagent-test-" + randomName(t)
	path := filepath.Join("/etc/pam.d", name)
	text := "# written by tacagent's pam tests; removed when they end\n" +
		strings.ReplaceAll(strings.Join(lines, "\n"), "MODULE", b.module) + "\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing %s: %v", path, err)
		}
	})
	return name
}

// result is one finished pamtester or pamhost run.
type result struct {
	code int
	out  string // stdout and stderr together
	took time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s, output:\n%s", r.code, r.took.Round(time.Millisecond), r.out)
}

// command runs a program with stdin and returns how it ended; a run over commandTimeout fails the test.
func command(t *testing.T, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within %s:\n%s", name, args, commandTimeout, out.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", name, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), out: out.String(), took: took}
}

// pamtester runs `pamtester -v [items] SERVICE USER OP...`; items are "tty=pts/1", "rhost=...".
func pamtester(t *testing.T, stdin string, items []string, svc, user string, ops ...string) result {
	t.Helper()
	args := []string{"-v"}
	for _, it := range items {
		args = append(args, "-I", it)
	}
	args = append(append(args, svc, user), ops...)
	return command(t, stdin, "pamtester", args...)
}

// daemon is a running `tacagent run` (internal/testkit).
type daemon struct {
	*testkit.Daemon
	t *testing.T
}

type syncBuffer = testkit.SyncBuffer

// startDaemon runs the daemon with one server at addr, plus extra YAML, and waits until it serves.
func startDaemon(t *testing.T, b *built, addr, extra string) *daemon {
	t.Helper()
	return startDaemonTimeout(t, b, addr, "2s", extra)
}

// startDaemonTimeout is startDaemon with the server's reply timeout.
func startDaemonTimeout(t *testing.T, b *built, addr, serverTimeout, extra string) *daemon {
	t.Helper()
	return startDaemonServers(t, b, testkit.ServerEntry("primary", addr, "timeout: "+serverTimeout, "connect_timeout: 1s"), extra)
}

// startDaemonServers runs the daemon with the given servers: items (testkit.ServerEntry) and extra YAML.
func startDaemonServers(t *testing.T, b *built, servers, extra string) *daemon {
	t.Helper()
	d := testkit.StartDaemon(t, testkit.DaemonOptions{Binary: b.tacagent, Key: testKey, Servers: servers, Extra: extra,
		Ready: daemonReady, StopWithin: daemonStop})
	return &daemon{Daemon: d, t: t}
}

// apiRequests sums tacagent_api_requests_total for one endpoint: how many requests reached the agent.
func (d *daemon) apiRequests(endpoint string) int {
	text := d.MetricsText()
	if text == "" {
		d.t.Fatal("no /metrics from the daemon")
	}
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "tacagent_api_requests_total{") && strings.Contains(line, `endpoint="`+endpoint+`"`) {
			var v float64
			f := strings.Fields(line)
			if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
				n += int(v)
			}
		}
	}
	return n
}

// The test server's accounts and rules.
var (
	testUsers = map[string]tacplustest.User{
		"alice": {Password: "alice-pw-Q7", Prompts: []tacplustest.Prompt{{Message: "OTP code: ", Answer: "246810", NoEcho: true}}},
		"bob":   {Password: "bob-pw-K3"},
		"carol": {Password: "carol-pw-Z9"},
		"dave":  {Password: "dave-pw-M1"},
	}
	testRules = []tacplustest.AuthorRule{
		{User: "alice", Service: "shell", Command: "", Permit: true, Args: []string{"priv-lvl=15", "acl*ops team"}},
		{User: "carol", Service: "shell", Command: "", Permit: true},
	}
	// secrets must never appear in any output of the module, pamtester or the daemon.
	secrets = []string{"alice-pw-Q7", "bob-pw-K3", "carol-pw-Z9", "dave-pw-M1", "246810", "new-pw-8Hq", "wrong-pw-0x", testKey}
)

func testServer(t *testing.T) *tacplustest.Server {
	t.Helper()
	s, err := tacplustest.Start(tacplustest.Config{Key: []byte(testKey), Users: testUsers, AuthorRules: testRules, SingleConnect: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// noSecrets fails the test when any known secret appears in text.
func noSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("a secret (%d bytes, starting %q) appears in %s", len(s), s[:2], where)
		}
	}
}

// hangingAgent listens on a unix socket, accepts connections and never answers: a stuck agent.
func hangingAgent(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hang.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return path
}
