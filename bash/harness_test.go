package bash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// Timing of the tests, named once. Deadlines are generous: the tests wait on conditions, never on time.
const (
	buildTimeout = 5 * time.Minute
	daemonReady  = 20 * time.Second
	daemonStop   = 30 * time.Second
	// stepTimeout bounds one command line in bash, from the newline to the next prompt.
	stepTimeout = 30 * time.Second
	shellExit   = 10 * time.Second
	pollEvery   = 5 * time.Millisecond
	prompt      = "TACPROMPT> "
	testKey     = "bash-test-shared-key-0123456789"
)

// testPath is the PATH of the shells, so that the tests know how bash resolves names.
const testPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type built struct {
	dir      string
	hook     string // tacagent_hook.so
	plugin   string // tacagent_plugin.so, reading pluginConf
	host     string // pluginhost
	words    string // wordstest
	tacagent string
	err      error
}

var (
	buildOnce sync.Once
	build     built
)

func (b *built) pluginConf() string { return filepath.Join(b.dir, "plugin.conf") }

func prerequisites() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the tests check local group fallbacks and the daemon's socket rules)")
	}
	for _, tool := range []string{"gcc", "make", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/usr/include/bash/builtins.h"); err != nil {
		missing = append(missing, "bash-builtins (/usr/include/bash/builtins.h)")
	}
	return missing
}

// requireBash fails (never skips) a test that cannot run here: .ci/run installs what it needs.
func requireBash(t testing.TB) *built {
	t.Helper()
	if missing := prerequisites(); len(missing) > 0 {
		t.Fatal("the bash tests need " + strings.Join(missing, ", ") +
			" (as root: apt-get install bash-builtins gcc make; see .ci/run)")
	}
	buildOnce.Do(doBuild)
	if build.err != nil {
		t.Fatal(build.err)
	}
	return &build
}

func doBuild() {
	dir, err := os.MkdirTemp("", "bash-tacagent-test-")
	if err != nil {
		build.err = err
		return
	}
	build = built{dir: dir, hook: filepath.Join(dir, "tacagent_hook.so"), plugin: filepath.Join(dir, "tacagent_plugin.so"),
		host: filepath.Join(dir, "pluginhost"), words: filepath.Join(dir, "wordstest"), tacagent: filepath.Join(dir, "tacagent")}
	if err := os.Chmod(dir, 0o755); err != nil {
		build.err = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	for _, args := range [][]string{
		{"make", "-s", "-C", ".", "O=" + dir, "BASH_CONF=" + build.pluginConf(), "all", "tests"},
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

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.EventuallyEvery(t, within, pollEvery, what, cond)
}

type syncBuffer = testkit.SyncBuffer

// daemon is a running `tacagent run` (internal/testkit).
type daemon struct {
	*testkit.Daemon
	t testing.TB
}

// startDaemon runs the daemon with one server at addr (its reply timeout serverTimeout) and waits until
// it serves.
func startDaemon(t testing.TB, b *built, addr, serverTimeout string) *daemon {
	t.Helper()
	return startDaemonAt(t, b, addr, serverTimeout, "")
}

// startDaemonAt is startDaemon with the socket at socket (a new path when empty).
func startDaemonAt(t testing.TB, b *built, addr, serverTimeout, socket string) *daemon {
	t.Helper()
	return startDaemonWith(t, b, addr, serverTimeout, socket, "")
}

// startDaemonWith is startDaemonAt with more configuration (YAML appended to the file). Each daemon has a
// spool of its own: with the default path a daemon would replay another test's leftover records.
func startDaemonWith(t testing.TB, b *built, addr, serverTimeout, socket, extra string) *daemon {
	t.Helper()
	d := testkit.StartDaemon(t, testkit.DaemonOptions{Binary: b.tacagent, Key: testKey,
		Servers: testkit.ServerEntry("primary", addr, "timeout: "+serverTimeout, "connect_timeout: 1s"),
		Socket:  socket, Extra: extra, LogLevel: "info", Ready: daemonReady, StopWithin: daemonStop})
	return &daemon{Daemon: d, t: t}
}

// The test server's rules for root (the tests' uid): touching a "denied" file and rm are refused.
const (
	msgDenied = "touching denied files is not allowed"
	msgRm     = "rm is not allowed here"
)

func testServer(t testing.TB) *tacplustest.Server {
	t.Helper()
	s, err := tacplustest.Start(tacplustest.Config{Key: []byte(testKey),
		Users: map[string]tacplustest.User{"root": {Password: "unused-pw-5x"}},
		AuthorRules: []tacplustest.AuthorRule{
			{User: "root", Service: "shell", Command: `/usr/bin/touch .*denied.*`, ServerMsg: msgDenied},
			{User: "root", Service: "shell", Command: `/usr/bin/rm( .*)?`, ServerMsg: msgRm},
			{User: "root", Service: "shell", Command: `.*`, Permit: true, Args: []string{"priv-lvl=15"}},
		}, SingleConnect: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// hookConf is one shell's settings (/etc/tacagent/bash.conf in production).
type hookConf struct {
	socket, builtin, group, cli string
	ack                         string // accounting_ack
}

// installScript writes the profile script, reading its settings from a file of this test, and returns
// its path.
func installScript(t testing.TB, b *built, c hookConf) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "bash.conf")
	if c.builtin == "" {
		c.builtin = b.hook
	}
	if c.cli == "" {
		c.cli = b.tacagent
	}
	text := fmt.Sprintf("socket=%s\nbuiltin=%s\nfallback_group=%s\ncli=%s\ntimeout_ms=10000\naccounting_ack=%s\n",
		c.socket, c.builtin, c.group, c.cli, c.ack)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../contrib/bash/tacagent.sh")
	if err != nil {
		t.Fatal(err)
	}
	const def = "local conf=/etc/tacagent/bash.conf"
	if !bytes.Contains(src, []byte(def)) {
		t.Fatalf("contrib/bash/tacagent.sh no longer has %q", def)
	}
	script := filepath.Join(dir, "tacagent.sh")
	if err := os.WriteFile(script, bytes.Replace(src, []byte(def), []byte("local conf="+conf), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return script
}

// shell is an interactive bash on a pseudo-terminal.
type shell struct {
	t    testing.TB
	cmd  *exec.Cmd
	tty  *os.File
	out  *syncBuffer
	done chan struct{} // the reader ended
	exit chan error
	dir  string // a scratch directory, the shell's working directory
}

// startShell runs `bash --noprofile --norc -i` and waits for its first prompt.
func startShell(t testing.TB) *shell {
	t.Helper()
	dir := t.TempDir()
	sh := &shell{t: t, out: &syncBuffer{}, done: make(chan struct{}), exit: make(chan error, 1), dir: dir}
	sh.cmd = exec.Command("bash", "--noprofile", "--norc", "-i")
	sh.cmd.Dir = dir
	sh.cmd.Env = []string{"PATH=" + testPath, "HOME=" + dir, "TERM=dumb", "PS1=" + prompt, "PS2=", "LC_ALL=C.UTF-8",
		"HISTFILE=/dev/null"}
	f, err := pty.StartWithSize(sh.cmd, &pty.Winsize{Rows: 50, Cols: 4000})
	if err != nil {
		t.Fatal(err)
	}
	sh.tty = f
	go func() {
		defer close(sh.done)
		_, _ = io.Copy(sh.out, f)
	}()
	go func() { sh.exit <- sh.cmd.Wait() }()
	t.Cleanup(sh.close)
	eventually(t, stepTimeout, "bash's first prompt", func() bool { return strings.Count(sh.out.String(), prompt) >= 1 })
	return sh
}

// run types one line and returns what bash printed until the next prompt.
func (sh *shell) run(line string) string {
	sh.t.Helper()
	before := sh.out.String()
	n := strings.Count(before, prompt)
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > time.Second {
			sh.t.Logf("slow step (%v): %q", d.Round(time.Millisecond), line)
		}
	}()
	if _, err := sh.tty.Write([]byte(line + "\n")); err != nil {
		sh.t.Fatal(err)
	}
	eventually(sh.t, stepTimeout, fmt.Sprintf("the prompt after %q; output so far:\n%s", line, sh.out.String()), func() bool {
		return strings.Count(sh.out.String(), prompt) > n
	})
	out := sh.out.String()[len(before):]
	if i := strings.LastIndex(out, prompt); i >= 0 {
		out = out[:i]
	}
	return strings.ReplaceAll(out, "\r", "")
}

// exit types exit and waits for bash to end (the hook sends its last STOPs on the way out).
func (sh *shell) exitShell() {
	sh.t.Helper()
	if _, err := sh.tty.Write([]byte("exit\n")); err != nil {
		sh.t.Fatal(err)
	}
	select {
	case <-sh.exit:
		sh.exit <- nil
	case <-time.After(shellExit):
		sh.t.Fatalf("bash did not exit within %s; output:\n%s", shellExit, sh.out.String())
	}
}

func (sh *shell) close() {
	select {
	case err := <-sh.exit:
		sh.exit <- err
	default:
		_ = sh.cmd.Process.Signal(syscall.SIGKILL)
		<-sh.exit
		sh.exit <- nil
	}
	sh.tty.Close()
	<-sh.done
}

// hooked starts a shell with the profile script sourced.
func hooked(t testing.TB, b *built, c hookConf) *shell {
	t.Helper()
	script := installScript(t, b, c)
	sh := startShell(t)
	out := sh.run("source " + script)
	if got := sh.run("shopt extdebug; trap -p DEBUG"); !strings.Contains(got, "trap -- 'tacagent_hook") &&
		!strings.Contains(got, "trap -- '__tacagent_cli") && !strings.Contains(got, "trap: denied") {
		t.Fatalf("the hook is not in place after sourcing the script:\n%s\n%s", out, got)
	}
	return sh
}

// command is one authorization request as the server saw it: cmd and its cmd-args.
type command struct {
	Cmd  string
	Args []string
}

func (c command) String() string { return fmt.Sprintf("%s %q", c.Cmd, c.Args) }

func commandOf(args []string) (service string, c command) {
	for _, a := range args {
		name, value, _, ok := tacplus.SplitArg(a)
		if !ok {
			continue
		}
		switch name {
		case "service":
			service = value
		case "cmd":
			c.Cmd = value
		case "cmd-arg":
			c.Args = append(c.Args, value)
		}
	}
	if c.Args == nil {
		c.Args = []string{}
	}
	return service, c
}

// authorized returns the commands the server was asked about from record from on, checking each is a
// shell request for root.
func authorized(t testing.TB, s *tacplustest.Server, from int) []command {
	t.Helper()
	var out []command
	for _, r := range s.Authorizations()[from:] {
		svc, c := commandOf(r.Args)
		if svc != "shell" || r.User != "root" {
			t.Errorf("authorization %v: service %q user %q, want shell and root", r.Args, svc, r.User)
		}
		out = append(out, c)
	}
	return out
}

func findCommand(cs []command, want command) bool {
	return slices.ContainsFunc(cs, func(c command) bool { return c.Cmd == want.Cmd && slices.Equal(c.Args, want.Args) })
}

// acct is one accounting record: its flags, task_id, command and status= (-1000 when absent).
type acct struct {
	Start  bool
	Task   string
	Cmd    command
	Status string
}

// accountedWhen waits until cond holds for the records the server has from index from, and returns them.
// The hook asks for durable answers: the agent answers once its spool holds a record and delivers it to
// the server after, so a test reads the server's records only once those it expects have arrived.
func accountedWhen(t *testing.T, s *tacplustest.Server, from int, what string, cond func([]acct) bool) []acct {
	t.Helper()
	eventually(t, stepTimeout, what, func() bool { return cond(accounted(s, from)) })
	return accounted(s, from)
}

func accounted(s *tacplustest.Server, from int) []acct {
	var out []acct
	for _, r := range s.Accounting()[from:] {
		_, c := commandOf(r.Args)
		a := acct{Start: r.Flags&tacplus.AcctFlagStart != 0, Task: r.TaskID, Cmd: c}
		for _, p := range r.Args {
			if v, ok := strings.CutPrefix(p, "status="); ok {
				a.Status = v
			}
		}
		out = append(out, a)
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	for _, d := range strings.Split(testPath, ":") {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s is not on %s", name, testPath)
	return ""
}

func tacplustestDropAll() tacplustest.Faults { return tacplustest.Faults{DropReplies: -1} }

// runHost runs a program and returns its combined output.
func runHost(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
