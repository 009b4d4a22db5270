package main

// End-to-end tests: they build the real binary, run `tacagent run` against the project's test server and
// against tacquito, and drive it with the CLI, raw HTTP on its socket and signals.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/internal/tacquitoserver"
	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

var binary string // the tacagent binary built by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tacagent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "tacagent")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tacagent:", err)
		os.Exit(2)
	}
	code := 0
	func() {
		defer os.RemoveAll(dir)
		code = m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const e2eKey = "e2e-shared-key-0123456789"

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.EventuallyEvery(t, within, 10*time.Millisecond, what, cond)
}

func freePort(t *testing.T) string { return testkit.FreePort(t) }

type syncBuffer = testkit.SyncBuffer

// daemonProc is a running `tacagent run` (internal/testkit).
type daemonProc struct {
	*testkit.Daemon
	t *testing.T
}

var serverEntry = testkit.ServerEntry

func startDaemon(t *testing.T, servers, extra string) *daemonProc {
	t.Helper()
	return startDaemonEdited(t, servers, extra, nil)
}

// startDaemonEdited is startDaemon with the written YAML passed through edit first (when not nil).
func startDaemonEdited(t *testing.T, servers, extra string, edit func(yaml string) string) *daemonProc {
	t.Helper()
	d := testkit.StartDaemon(t, testkit.DaemonOptions{Binary: binary, Key: e2eKey, Servers: servers, Extra: extra,
		Edit: edit, Ready: 15 * time.Second})
	return &daemonProc{Daemon: d, t: t}
}

// cli runs the tacagent binary against the daemon's socket.
func (d *daemonProc) cli(stdin string, args ...string) (code int, stdout, stderr string) {
	d.t.Helper()
	return runCLI(d.t, stdin, append([]string{"--socket", d.Socket}, args...)...)
}

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), o.String(), e.String()
}

func (d *daemonProc) metricsText() string {
	text := d.MetricsText()
	if text == "" {
		d.t.Fatal("no /metrics from the daemon")
	}
	return text
}

// metricValue returns the value of the first sample whose line starts with prefix, or -1.
func (d *daemonProc) metricValue(prefix string) float64 {
	for _, line := range strings.Split(d.metricsText(), "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			fields := strings.Fields(line)
			fmt.Sscan(fields[len(fields)-1], &v)
			return v
		}
	}
	return -1
}

func testServer(t *testing.T, cfg tacplustest.Config) *tacplustest.Server {
	t.Helper()
	cfg.Key = []byte(e2eKey)
	s, err := tacplustest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var users = map[string]tacplustest.User{
	"alice": {Password: "alice-pw", Prompts: []tacplustest.Prompt{{Message: "OTP code: ", Answer: "246810", NoEcho: true}}},
	"bob":   {Password: "bob-pw"},
	"slow":  {Password: "slow-pw", Delay: 400 * time.Millisecond},
	// "drain" answers after 4 s: long enough that every one of TestSIGTERMDrains' sessions is on the wire
	// at once even on a loaded machine, short enough for the daemon's 10 s drain.
	"drain": {Password: "drain-pw", Delay: 4 * time.Second},
}

var rules = []tacplustest.AuthorRule{
	{User: "alice", Command: "show( .*)?", Permit: true, Args: []string{"priv-lvl=15"}},
	{User: "bob", Command: "show( .*)?", Permit: true},
}

// TestCLIAgainstTestServer drives every CLI command through a real daemon and checks exit codes and
// output, the server's accounting sink and /metrics.
func TestCLIAgainstTestServer(t *testing.T) {
	srv := testServer(t, tacplustest.Config{Users: users, AuthorRules: rules, SingleConnect: true})
	d := startDaemon(t, serverEntry("primary", srv.Addr()), "")

	steps := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
	}{
		{"PAP pass", "alice-pw\n", []string{"login", "--user", "alice", "--type", "pap"}, exitOK, "login ok: user alice"},
		{"PAP fail", "nope\n", []string{"login", "--user", "alice", "--type", "pap"}, exitFail, ""},
		{"CHAP pass", "bob-pw\n", []string{"login", "--user", "bob", "--type", "chap"}, exitOK, "login ok"},
		{"MS-CHAPv2 pass", "bob-pw\n", []string{"login", "--user", "bob", "--type", "mschapv2"}, exitOK, "login ok"},
		{"MS-CHAPv1 fail", "bad\n", []string{"login", "--user", "bob", "--type", "mschapv1"}, exitFail, ""},
		{"ASCII multi-prompt", "alice\nalice-pw\n246810\n", []string{"login"}, exitOK, "login ok: user alice"},
		{"ASCII wrong OTP", "alice\nalice-pw\n000000\n", []string{"login"}, exitFail, ""},
		{"authorize permit", "", []string{"authorize", "--user", "alice", "-v", "--", "show", "version"}, exitOK, "priv-lvl=15"},
		{"authorize deny", "", []string{"authorize", "--user", "alice", "--", "reload"}, exitFail, ""},
		{"account start", "", []string{"account", "start", "--user", "alice", "--task-id", "77", "--attr", "service=shell"}, exitOK, "start recorded"},
		{"account stop", "", []string{"account", "stop", "--user", "alice", "--task-id", "77", "--", "show", "version"}, exitOK, "stop recorded"},
		{"status", "", []string{"status"}, exitOK, srv.Addr()},
		{"usage error", "", []string{"authorize", "--", "show"}, exitUsage, ""},
		{"unknown command", "", []string{"frobnicate"}, exitUsage, ""},
	}
	for _, s := range steps {
		code, out, errOut := d.cli(s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.stdout) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and stdout containing %q", s.name, code, out, errOut, s.code, s.stdout)
		}
	}

	recs := srv.Accounting()
	if len(recs) != 2 || recs[0].Flags != tacplus.AcctFlagStart || recs[1].Flags != tacplus.AcctFlagStop {
		t.Fatalf("accounting sink has %+v, want START then STOP", recs)
	}
	for _, want := range []string{"task_id=77", "caller_uid*0"} {
		if !containsArg(recs[0].Args, want) {
			t.Errorf("START record args %v lack %q", recs[0].Args, want)
		}
	}

	m := d.metricsText()
	for _, want := range []string{
		`tacagent_sessions_finished_total{kind="authen",outcome="ok",server="` + srv.Addr() + `"}`,
		`tacagent_sessions_finished_total{kind="authen",outcome="authentication_failed",server="` + srv.Addr() + `"}`,
		`tacagent_sessions_finished_total{kind="author",outcome="denied",server="` + srv.Addr() + `"}`,
		`tacagent_sessions_finished_total{kind="acct",outcome="ok",server="` + srv.Addr() + `"}`,
		`tacagent_single_connect{server="` + srv.Addr() + `"} 1`,
		`tacagent_api_requests_total`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, e2eKey) || strings.Contains(d.Stderr.String(), e2eKey) || strings.Contains(d.Stderr.String(), "alice-pw") {
		t.Fatal("a key or a password reached /metrics or the logs")
	}
	if !testkit.HTTPOK("http://" + d.Metrics + "/readyz") {
		t.Error("/readyz does not answer 200")
	}
	if code := d.Stop(); code != 0 {
		t.Fatalf("SIGTERM exit code %d, want 0\n%s", code, d.Stderr.String())
	}
	// With the daemon gone the CLI reports an error, not a denial.
	if code, _, errOut := d.cli("", "authorize", "--user", "alice", "--", "show"); code != exitError {
		t.Fatalf("with no daemon: exit %d (%s), want %d", code, errOut, exitError)
	}
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// TestCLIAgainstTacquito runs the daemon against tacquito's real server.
func TestCLIAgainstTacquito(t *testing.T) {
	srv, err := tacquitoserver.Start(tacquitoserver.Config{Key: []byte(e2eKey), Users: []tacquitoserver.User{
		{Name: "carol", Password: "carol-pw", PrivLvl: 15, Permit: []string{"show"}, Deny: []string{"reload"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d := startDaemon(t, serverEntry("tacquito", srv.Addr()), "")
	for _, s := range []struct {
		stdin string
		args  []string
		code  int
	}{
		{"carol-pw\n", []string{"login", "--user", "carol", "--type", "pap"}, exitOK},
		{"carol\ncarol-pw\n", []string{"login"}, exitOK},
		{"wrong\n", []string{"login", "--user", "carol", "--type", "pap"}, exitFail},
		{"", []string{"authorize", "--user", "carol", "--", "show", "version"}, exitOK},
		{"", []string{"authorize", "--user", "carol", "--", "reload"}, exitFail},
		{"", []string{"account", "start", "--user", "carol", "--task-id", "9"}, exitOK},
		{"", []string{"account", "stop", "--user", "carol", "--task-id", "9"}, exitOK},
	} {
		if code, out, errOut := d.cli(s.stdin, s.args...); code != s.code {
			t.Errorf("%v: exit %d (stdout %q, stderr %q), want %d", s.args, code, out, errOut, s.code)
		}
	}
	if n := len(srv.Accounting()); n != 2 {
		t.Fatalf("tacquito recorded %d accounting records, want 2", n)
	}
}

// TestBadConfigs runs the daemon on broken configurations: each must exit 78 at once with an error that
// names the file, the line and the field.
func TestBadConfigs(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(e2eKey), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte(e2eKey), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := "servers:\n  - name: a\n    address: 127.0.0.1:49\n    key_file: " + key + "\n"
	cases := []struct{ name, yaml, want string }{
		{"unknown top-level field", srv + "colour: blue\n", "colour"},
		{"unknown server field", "servers:\n  - name: a\n    address: 127.0.0.1:49\n    key_file: " + key + "\n    tiemout: 5s\n", "tiemout"},
		{"bare number duration", srv + "dead_time: 30\n", "dead_time"},
		{"no key", "servers:\n  - name: a\n    address: 127.0.0.1:49\n", "key"},
		{"missing key file", "servers:\n  - name: a\n    address: 127.0.0.1:49\n    key_file: /nonexistent/key\n", "key_file"},
		{"short key", "servers:\n  - name: a\n    address: 127.0.0.1:49\n    key_file: " + short + "\n", "short"},
		{"world-readable key", "servers:\n  - name: a\n    address: 127.0.0.1:49\n    key_file: " + open + "\n", "key_file"},
		{"unset key env", "servers:\n  - name: a\n    address: 127.0.0.1:49\n    key_env: TACAGENT_E2E_UNSET\n", "key_env"},
		{"unencrypted not allowed", "servers:\n  - name: a\n    address: 127.0.0.1:49\n    unencrypted: true\n", "unencrypted"},
		{"bad port", "servers:\n  - name: a\n    address: 127.0.0.1:99999\n    key_file: " + key + "\n", "address"},
		{"unknown group member", srv + "groups:\n  - name: g\n    servers: [a, b]\n", "groups[0]"},
		{"bad socket mode", srv + "api:\n  mode: \"0777\"\n", "api.mode"},
		{"relative socket", srv + "api:\n  socket: tacagent.sock\n", "api.socket"},
		{"bad log level", srv + "log:\n  level: loud\n", "log.level"},
		{"bad stack control", srv + "authentication:\n  stack:\n    - tacacs: default\n      control: maybe\n", "stack[0]"},
		{"no servers", "servers: []\n", "servers"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(p, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, "", "run", "--config", p)
		if code != exitConfig || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "bad.yaml") {
			t.Errorf("%s: exit %d, stderr %q; want exit %d naming bad.yaml and %q", c.name, code, errOut, exitConfig, c.want)
		}
		if strings.Contains(errOut, e2eKey) {
			t.Errorf("%s: the key is in the error output", c.name)
		}
	}
}

// TestBadAPIInput sends malformed requests to a running daemon's socket; each gets a clear error and the
// daemon keeps serving.
func TestBadAPIInput(t *testing.T) {
	srv := testServer(t, tacplustest.Config{Users: users, AuthorRules: rules, SingleConnect: true})
	d := startDaemon(t, serverEntry("primary", srv.Addr()), "")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
	}}}
	defer hc.CloseIdleConnections()
	post := func(path, body string) (int, string) {
		resp, err := hc.Post("http://agent"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name, path, body string
		status           int
	}{
		{"malformed JSON", "/v1/authenticate", `{"user": "alice", `, 400},
		{"unknown field", "/v1/authorize", `{"user":"alice","colour":"blue"}`, 400},
		{"huge body", "/v1/authenticate", `{"user":"` + strings.Repeat("a", 1<<20) + `"}`, 413},
		{"unknown version", "/v9/authenticate", `{}`, 404},
		{"unknown endpoint", "/v1/frobnicate", `{}`, 404},
	} {
		status, body := post(c.path, c.body)
		if status != c.status || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d with a JSON error", c.name, status, body, c.status)
		}
	}
	if code, _, errOut := d.cli("alice-pw\n", "login", "--user", "alice", "--type", "pap"); code != exitOK {
		t.Fatalf("the daemon stopped serving after bad input: exit %d %s", code, errOut)
	}
}

// TestReloadUnderLoad keeps logins running while the configuration is changed and reloaded (a changed
// server timeout replaces the agent), then reloads a broken file: no login may fail, the broken file is
// refused and counted, and the old configuration keeps serving.
func TestReloadUnderLoad(t *testing.T) {
	srv := testServer(t, tacplustest.Config{Users: users, AuthorRules: rules, SingleConnect: true})
	d := startDaemon(t, serverEntry("primary", srv.Addr(), "timeout: 5s"), "")
	c := localapi.NewClient(d.Socket)
	defer c.Close()

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 2000; n++ { // bounded, stopped by the test well before
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Authenticate(ctx, localapi.AuthenRequest{User: "bob", Password: "bob-pw", Type: localapi.TypePAP}, nil)
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	eventually(t, 10*time.Second, "logins under way", func() bool { return ok.Load() > 50 })

	cfg, err := os.ReadFile(d.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.Config, bytes.Replace(cfg, []byte("timeout: 5s"), []byte("timeout: 4s"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	_ = d.Cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the reload counted", func() bool {
		return d.metricValue(`tacagent_config_reloads_total{result="ok"}`) == 1
	})
	eventually(t, 10*time.Second, "logins after the reload", func() bool { return ok.Load() > before+50 })

	if err := os.WriteFile(d.Config, []byte("servers: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = d.Cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the bad reload counted", func() bool {
		return d.metricValue(`tacagent_config_reloads_total{result="error"}`) == 1
	})
	after := ok.Load()
	eventually(t, 10*time.Second, "logins after the refused reload", func() bool { return ok.Load() > after+50 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d logins failed across the reloads; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	if !strings.Contains(d.Stderr.String(), "reload refused") {
		t.Errorf("the refused reload was not logged:\n%s", d.Stderr.String())
	}
}

// TestSIGTERMDrains sends SIGTERM while slow sessions are in flight: each finishes with its real answer,
// and the daemon exits 0.
func TestSIGTERMDrains(t *testing.T) {
	srv := testServer(t, tacplustest.Config{Users: users, AuthorRules: rules, SingleConnect: true})
	d := startDaemon(t, serverEntry("primary", srv.Addr()), "")
	c := localapi.NewClient(d.Socket)
	defer c.Close()
	// One login first: the first session of a connection negotiates single-connect alone (RFC 8907
	// section 4.3), and the test wants all n slow sessions on the wire at once.
	if code, _, errOut := d.cli("bob-pw\n", "login", "--user", "bob", "--type", "pap"); code != exitOK {
		t.Fatalf("warm-up login: exit %d %s", code, errOut)
	}
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// One rem_addr each: the rate limit lets at most failure_limit.max attempts of one (user, rhost)
			// be in flight at once, and this test wants all n on the wire.
			_, err := c.Authenticate(ctx, localapi.AuthenRequest{User: "drain", Password: "drain-pw", Type: localapi.TypePAP,
				RemAddr: fmt.Sprintf("192.0.2.%d", i+1)}, nil)
			errs <- err
		}()
	}
	eventually(t, 10*time.Second, "sessions in flight", func() bool {
		v := d.metricValue(`tacagent_sessions_in_flight{server="` + srv.Addr() + `"}`)
		return v == n
	})
	_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("session %d ended with %v, want PASS after the drain", i, err)
		}
	}
	if !d.WaitExit(20 * time.Second) {
		t.Fatal("the daemon did not exit after draining")
	}
	if code := d.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, d.Stderr.String())
	}
	if !strings.Contains(d.Stderr.String(), `"message":"stopped"`) {
		t.Errorf("no 'stopped' log line:\n%s", lastLines(d.Stderr.String(), 10))
	}
}

func lastLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
