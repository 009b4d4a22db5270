// Package systemd holds the tests of the systemd unit (tacagent.service): systemd-analyze verify and
// security, and the daemon run under strace through start, logins, reload and the chown of its socket,
// with every system call it made checked against the unit's SystemCallFilter.
package systemd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

const (
	unitFile = "tacagent.service"
	testKey  = "systemd-unit-test-key-0123456789"
	// maxExposure is the highest `systemd-analyze security` score the unit may have (issue 19).
	maxExposure = 2.0
	// socketGroup is the api.group the test gives the socket (it exists on every Debian system).
	socketGroup = "adm"
)

// need skips the test, saying why, when a tool is missing.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (CI installs the Debian packages strace and systemd): %v", tool, err)
		}
	}
}

// buildDaemon builds the tacagent binary (without -race: the race runtime's own system calls are not the
// daemon's) into dir.
func buildDaemon(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tacagent")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tacagent/tacagent/cmd/tacagent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// unitWithBinary writes the unit with ExecStart pointing at bin, for systemd-analyze.
func unitWithBinary(t *testing.T, dir, bin string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u := strings.ReplaceAll(string(b), "/usr/sbin/tacagent", bin)
	p := filepath.Join(dir, unitFile)
	if err := os.WriteFile(p, []byte(u), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitVerifyAndSecurity: systemd-analyze verify accepts the unit, and its security exposure is at
// most maxExposure.
func TestUnitVerifyAndSecurity(t *testing.T) {
	need(t, "systemd-analyze")
	dir := t.TempDir()
	unit := unitWithBinary(t, dir, buildDaemon(t, dir))
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f (at most %.1f)", score, maxExposure)
	if score > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
	}
}

// syscallSets reads every set `systemd-analyze syscall-filter` knows, with nested sets expanded.
func syscallSets(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager").Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter: %v", err)
	}
	raw := map[string][]string{}
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "@"):
			cur = strings.TrimSpace(line)
			raw[cur] = nil
		case strings.HasPrefix(line, "    ") && cur != "":
			e := strings.TrimSpace(line)
			if e != "" && !strings.HasPrefix(e, "#") {
				raw[cur] = append(raw[cur], e)
			}
		default:
			cur = ""
		}
	}
	sets := map[string]map[string]bool{}
	var expand func(name string, seen map[string]bool) map[string]bool
	expand = func(name string, seen map[string]bool) map[string]bool {
		if s, ok := sets[name]; ok {
			return s
		}
		if seen[name] {
			t.Fatalf("syscall set %s includes itself", name)
		}
		seen[name] = true
		s := map[string]bool{}
		for _, e := range raw[name] {
			if strings.HasPrefix(e, "@") {
				for c := range expand(e, seen) {
					s[c] = true
				}
			} else {
				s[e] = true
			}
		}
		sets[name] = s
		return s
	}
	for name := range raw {
		expand(name, map[string]bool{})
	}
	if len(sets["@system-service"]) < 100 {
		t.Fatalf("@system-service has %d calls: the output of systemd-analyze syscall-filter was not understood", len(sets["@system-service"]))
	}
	return sets
}

// allowedSyscalls applies the unit's SystemCallFilter= lines in order, as systemd does: the first line
// decides allow-list or deny-list; later lines add (plain) or remove (~) calls.
func allowedSyscalls(t *testing.T, sets map[string]map[string]bool) (allowed map[string]bool, lines []string) {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	allowed = map[string]bool{}
	first := true
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "SystemCallFilter=")
		if !ok {
			continue
		}
		lines = append(lines, v)
		deny := strings.HasPrefix(v, "~")
		v = strings.TrimPrefix(v, "~")
		if first && deny {
			t.Fatalf("the unit's first SystemCallFilter= is a deny list: this test expects an allow list")
		}
		first = false
		for _, item := range strings.Fields(v) {
			calls := map[string]bool{item: true}
			if strings.HasPrefix(item, "@") {
				s, ok := sets[item]
				if !ok {
					t.Fatalf("SystemCallFilter names the unknown set %s", item)
				}
				calls = s
			}
			for c := range calls {
				if deny {
					delete(allowed, c)
				} else {
					allowed[c] = true
				}
			}
		}
	}
	if len(lines) == 0 {
		t.Fatal("the unit has no SystemCallFilter=")
	}
	return allowed, lines
}

// TestSyscallsAllowedByFilter runs the daemon under strace -f with api.group set (so it chowns its
// socket), serves logins, an authorization, accounting and status, reloads it with SIGHUP, stops it with
// SIGTERM, and checks that every system call it made is allowed by the unit's SystemCallFilter.
func TestSyscallsAllowedByFilter(t *testing.T) {
	need(t, "strace", "systemd-analyze")
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon gives its socket a group with chown, as it does under systemd")
	}
	sets := syscallSets(t)
	allowed, filter := allowedSyscalls(t, sets)

	dir := t.TempDir()
	bin := buildDaemon(t, dir)
	srv, err := tacplustest.Start(tacplustest.Config{Key: []byte(testKey), SingleConnect: true,
		Users:       map[string]tacplustest.User{"alice": {Password: "alice-pw"}},
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: "show( .*)?", Permit: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(runDir, "tacagent.sock")
	metricsAddr := freePort(t)
	cfg := func(level string) string {
		return fmt.Sprintf("servers:\n  - name: primary\n    address: %s\n    key_file: %s\nmetrics:\n  address: %s\n"+
			"api:\n  socket: %s\n  mode: \"0660\"\n  group: %s\nlog:\n  level: %s\naccounting:\n  spool:\n    path: %s\n",
			srv.Addr(), keyFile, metricsAddr, sock, socketGroup, level, filepath.Join(dir, "spool", "spool.db"))
	}
	cfgPath := filepath.Join(dir, "tacagent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg("info")), 0o600); err != nil {
		t.Fatal(err)
	}

	summary := filepath.Join(dir, "strace.summary")
	cmd := exec.Command("strace", "-f", "-c", "-o", summary, bin, "run", "--config", cfgPath)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	waitFor(t, 30*time.Second, "the daemon's socket and /healthz under strace", done, &stderr, func() bool {
		_, err := os.Stat(sock)
		return err == nil && httpOK("http://"+metricsAddr+"/healthz")
	})
	daemonPID := tracee(t, cmd.Process.Pid)

	// The socket belongs to the group: the chown went through the filter.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != 4 { // adm
		t.Fatalf("socket group %d, want adm (4)", gid)
	}

	c := localapi.NewClient(sock)
	defer c.Close()
	traffic := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.Authenticate(ctx, localapi.AuthenRequest{User: "alice", Type: localapi.TypePAP, Password: "alice-pw"}, nil); err != nil {
			t.Errorf("login: %v", err)
		}
		if _, err := c.Authorize(ctx, localapi.AuthorRequest{User: "alice", Cmd: "show", Args: []string{"clock"}}); err != nil {
			t.Errorf("authorize: %v", err)
		}
		if _, err := c.Account(ctx, localapi.AcctRequest{User: "alice", Flags: localapi.FlagStart, TaskID: "1"}); err != nil {
			t.Errorf("account: %v", err)
		}
		if _, err := c.Status(ctx); err != nil {
			t.Errorf("status: %v", err)
		}
		if !httpOK("http://" + metricsAddr + "/metrics") {
			t.Errorf("/metrics failed")
		}
	}
	traffic()

	// Reload with a changed log level, then serve again.
	if err := os.WriteFile(cfgPath, []byte(cfg("debug")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(daemonPID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the reload", done, &stderr, func() bool {
		return strings.Contains(stderr.String(), "configuration reloaded")
	})
	traffic()

	if err := syscall.Kill(daemonPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon under strace: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon did not stop within 30 s of SIGTERM\n%s", stderr.String())
	}

	used := readSummary(t, summary)
	var denied []string
	for call := range used {
		if !allowed[call] {
			denied = append(denied, call)
		}
	}
	sort.Strings(denied)
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("the daemon made %d distinct system calls: %s", len(names), strings.Join(names, " "))
	if !used["fchownat"] && !used["chown"] && !used["fchown"] && !used["lchown"] {
		t.Errorf("no chown call seen: the test did not exercise api.group")
	}
	if len(denied) > 0 {
		t.Errorf("system calls outside the unit's filter %v (they would fail with EPERM under systemd): %s",
			filter, strings.Join(denied, " "))
	}
}

// tracee returns the pid of strace's child (the daemon).
func tracee(t *testing.T, stracePID int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", stracePID, stracePID))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("strace has children %q, want one", b)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// readSummary parses strace -c's table: the last column of each row is the call's name.
func readSummary(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "%") || strings.HasPrefix(f[0], "-") {
			continue
		}
		name := f[len(f)-1]
		if name == "total" || !regexp.MustCompile(`^[a-z0-9_]+$`).MatchString(name) {
			continue
		}
		calls[name] = true
	}
	if len(calls) < 10 {
		t.Fatalf("strace summary has %d calls:\n%s", len(calls), b)
	}
	return calls
}

func waitFor(t *testing.T, within time.Duration, what string, exited chan error, log *syncBuffer, cond func() bool) {
	t.Helper()
	testkit.EventuallyEvery(t, within, 20*time.Millisecond, what, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the daemon exited while waiting for %s: %v\n%s", what, err, log.String())
		default:
		}
		return cond()
	})
}

func httpOK(url string) bool { return testkit.HTTPOK(url) }

func freePort(t *testing.T) string { return testkit.FreePort(t) }

type syncBuffer = testkit.SyncBuffer
