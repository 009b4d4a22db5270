package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tacagent/tacagent/internal/loadgen"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// benchRun runs `tacagent ARGS` in this process.
func benchRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

func decodeReport(t *testing.T, stdout string) *loadgen.Report {
	t.Helper()
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json printed something that is not the report: %v\n%s", err, stdout)
	}
	return &rep
}

// The default: embedded servers in a child process, JSON on stdout, a PNG plot.
func TestBenchEmbedded(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "latency.png")
	code, stdout, stderr := benchRun(t, "bench", "--count", "100", "--callers", "4",
		"--modes", "single-connect,per-session,tacquito", "--json", "--plot", plot)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rep := decodeReport(t, stdout)
	if len(rep.Results) != 3 || !strings.Contains(rep.ServersRun, "child process") || len(rep.Servers) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, r := range rep.Results {
		if r.Requests != 100 || r.OK != 100 || len(r.Errors) != 0 || r.Latency.P50 > r.Latency.P99 || r.ServerAccepts == nil {
			t.Errorf("%s: %+v", r.Mode, r)
		}
	}
	if rep.SingleVsPerSession <= 0 || rep.Build == "" {
		t.Errorf("ratio %.2f, build %q", rep.SingleVsPerSession, rep.Build)
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("the plot is not a PNG: %v", err)
	}
}

// writeSecret writes a secret file with mode.
func writeSecret(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// A real server given with --server: the key and password come from checked files; a wrong key is
// reported as failures (exit 2), never as success.
func TestBenchExternalServer(t *testing.T) {
	const key, user, pw = "bench-external-key", "alice", "alice-password"
	srv, err := tacplustest.Start(tacplustest.Config{Key: []byte(key), SingleConnect: true, KeepOpen: true,
		Users: map[string]tacplustest.User{user: {Password: pw}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pwFile := writeSecret(t, "password", pw, 0o600)
	args := func(keyFile string) []string {
		return []string{"bench", "--server", srv.Addr(), "--key-file", keyFile, "--user", user, "--password-file", pwFile,
			"--count", "40", "--callers", "2", "--modes", "single-connect,tacquito", "--json"}
	}

	code, stdout, stderr := benchRun(t, args(writeSecret(t, "key", key, 0o600))...)
	if code != exitOK {
		t.Fatalf("right key: exit %d: %s", code, stderr)
	}
	rep := decodeReport(t, stdout)
	if rep.ServersRun != "external" || rep.Result(loadgen.ModeTacquito) == nil || rep.Result(loadgen.ModeTacquito).OK != 40 {
		t.Errorf("right key: %s", stdout)
	}
	if r := rep.Result(loadgen.ModeSingleConnect); r == nil || r.OK != 40 || r.ServerAccepts != nil {
		t.Errorf("right key, single-connect: %+v (accepts of an external server are not counted)", r)
	}

	code, stdout, stderr = benchRun(t, args(writeSecret(t, "wrong", "not-"+key, 0o600))...)
	if code != exitError || !strings.Contains(stderr, "logins failed") {
		t.Fatalf("wrong key: exit %d, want %d: %s", code, exitError, stderr)
	}
	rep = decodeReport(t, stdout)
	for _, r := range rep.Results {
		if r.OK != 0 || len(r.Errors) == 0 {
			t.Errorf("wrong key, %s: %d ok, errors %v", r.Mode, r.OK, r.Errors)
		}
	}
	if strings.Contains(stdout+stderr, key) || strings.Contains(stdout+stderr, pw) {
		t.Error("a secret reached the output")
	}
}

func TestBenchFlags(t *testing.T) {
	readable := writeSecret(t, "key", "readable-key-value", 0o644)
	pw := writeSecret(t, "pw", "pw-value", 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no key file", []string{"--server", "127.0.0.1:49", "--user", "u", "--password-file", pw}, exitUsage, "--key-file"},
		{"kill with server", []string{"--server", "127.0.0.1:49", "--key-file", pw, "--user", "u", "--password-file", pw,
			"--kill-server-at", "1s"}, exitUsage, "embedded"},
		{"unknown mode", []string{"--modes", "fastest"}, exitUsage, "unknown mode"},
		{"no duration", []string{"--duration", "0"}, exitUsage, "--duration or --count"},
		{"key file readable by others", []string{"--server", "127.0.0.1:49", "--key-file", readable, "--user", "u",
			"--password-file", pw}, exitConfig, "group or others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := benchRun(t, append([]string{"bench"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, stderr, tc.msg)
			}
			if strings.Contains(stdout+stderr, "readable-key-value") || strings.Contains(stdout+stderr, "pw-value") {
				t.Error("a secret reached the output")
			}
		})
	}
}

// --socket: the local-api mode against a running daemon (another process), whose CPU per login is read
// from /proc and reported besides the bench's own.
func TestBenchRunningDaemon(t *testing.T) {
	const user, pw = "alice", "alice-password"
	srv, err := tacplustest.Start(tacplustest.Config{Key: []byte(e2eKey), SingleConnect: true,
		Users: map[string]tacplustest.User{user: {Password: pw}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d := startDaemon(t, serverEntry("core", srv.Addr()), "")
	pwFile := writeSecret(t, "password", pw, 0o600)
	code, stdout, stderr := benchRun(t, "--socket", d.Socket, "bench", "--modes", "local-api", "--user", user,
		"--password-file", pwFile, "--count", "60", "--callers", "3", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	rep := decodeReport(t, stdout)
	r := rep.Result(loadgen.ModeLocalAPI)
	if r == nil || r.OK != 60 || len(r.Errors) != 0 {
		t.Fatalf("local-api: %s", stdout)
	}
	if r.ServerAccepts != nil {
		t.Errorf("the embedded servers' accepts were reported for a running daemon's servers: %d", *r.ServerAccepts)
	}
	if r.DaemonPID != d.Cmd.Process.Pid || r.DaemonCPUPerAuthUS < 0 {
		t.Errorf("daemon pid %d (want %d), CPU %.1f µs per login", r.DaemonPID, d.Cmd.Process.Pid, r.DaemonCPUPerAuthUS)
	}
	if srv.Stats().AuthenPass != 61 { // the warm-up and the 60 of the run
		t.Errorf("the server passed %d logins, want 61", srv.Stats().AuthenPass)
	}
}

// The progress bar (drawn only on a terminal) advances with the logins and stops its goroutine at the end.
func TestBenchProgressBar(t *testing.T) {
	out := &syncBuffer{}
	var done atomic.Int64
	end := progressBars(out, benchOptions{count: 100})("single-connect", &done)
	done.Store(50)
	eventually(t, 10*time.Second, "the bar to show 50%", func() bool { return strings.Contains(out.String(), "50%") })
	end()
	if !strings.Contains(out.String(), "single-connect") {
		t.Errorf("bar output %q", out.String())
	}
}
