package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DaemonOptions describe a `tacagent run` for a test. Its configuration is written to a temporary
// directory: the servers, a metrics address and socket of its own, a spool file of its own (unless Extra
// has an accounting section), the log level, then Extra.
type DaemonOptions struct {
	Binary  string // the tacagent binary
	Key     string // the shared secret, written to a key file; "KEYFILE" in Servers names that file
	Servers string // the items of the servers: list (ServerEntry)
	Extra   string // more top-level YAML
	// Socket is the local API socket's path; a file in the daemon's directory when empty. API holds more
	// keys of the api: section (already indented, e.g. "  group: users\n"); mode is "0600" unless API sets it.
	Socket, API string
	// LogLevel is the daemon's log level; "debug" when empty.
	LogLevel string
	// Edit, when set, rewrites the YAML before the daemon reads it (for tests of refused configurations).
	Edit func(yaml string) string
	// Ready bounds the start (the socket and /healthz; 20 s when zero), StopWithin the exit after SIGTERM
	// (30 s when zero).
	Ready, StopWithin time.Duration
}

// Daemon is a running `tacagent run`, stopped by the test's cleanup.
type Daemon struct {
	t       testing.TB
	opts    DaemonOptions
	Cmd     *exec.Cmd
	Dir     string // the temporary directory holding the configuration, key and spool
	Config  string // the configuration file
	Socket  string // the local API socket
	Metrics string // the metrics listener's host:port
	Stderr  *SyncBuffer
	done    chan error
}

// ServerEntry is one item of the servers: list, with extra keys (already "key: value") appended.
func ServerEntry(name, addr string, extra ...string) string {
	s := fmt.Sprintf("  - name: %s\n    address: %s\n    key_file: KEYFILE\n", name, addr)
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}

// StartDaemon writes the configuration, starts the daemon and waits until its socket exists and
// /healthz answers. The daemon's early exit fails the test with its log.
func StartDaemon(t testing.TB, o DaemonOptions) *Daemon {
	t.Helper()
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if o.Ready == 0 {
		o.Ready = 20 * time.Second
	}
	if o.StopWithin == 0 {
		o.StopWithin = 30 * time.Second
	}
	dir := t.TempDir()
	if o.Socket == "" {
		o.Socket = filepath.Join(dir, "tacagent.sock")
	}
	api := o.API
	if !strings.Contains(api, "mode:") {
		api = "  mode: \"0600\"\n" + api
	}
	d := &Daemon{t: t, opts: o, Dir: dir, Socket: o.Socket, Metrics: FreePort(t),
		Config: filepath.Join(dir, "tacagent.yaml"), Stderr: &SyncBuffer{}, done: make(chan error, 1)}
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(o.Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := o.Extra
	if !strings.Contains(extra, "accounting:") {
		// The spool is on by default; each daemon gets its own file (the default path is the host's).
		extra += fmt.Sprintf("accounting:\n  spool:\n    path: %s\n", filepath.Join(dir, "spool", "spool.db"))
	}
	yaml := fmt.Sprintf("servers:\n%s\nmetrics:\n  address: %s\napi:\n  socket: %s\n%slog:\n  level: %s\n%s",
		strings.ReplaceAll(o.Servers, "KEYFILE", keyFile), d.Metrics, d.Socket, api, o.LogLevel, extra)
	if o.Edit != nil {
		yaml = o.Edit(yaml)
	}
	if err := os.WriteFile(d.Config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Cmd = exec.Command(o.Binary, "run", "--config", d.Config)
	d.Cmd.Stderr = d.Stderr
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.Cmd.Wait() }()
	t.Cleanup(func() { d.Stop() })
	EventuallyEvery(t, o.Ready, 10*time.Millisecond, "the daemon's socket and /healthz", func() bool {
		if exited, err := d.Exited(); exited {
			t.Fatalf("the daemon exited early: %v\n%s", err, d.Stderr.String())
		}
		_, err := os.Stat(d.Socket)
		return err == nil && HTTPOK("http://"+d.Metrics+"/healthz")
	})
	return d
}

// Exited says whether the daemon has exited, and with what.
func (d *Daemon) Exited() (exited bool, err error) {
	select {
	case err := <-d.done:
		d.done <- err
		return true, err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits for the exit (killing the daemon and failing the test past StopWithin) and
// returns the exit code. It also fails the test when the shared key appears in the daemon's log.
func (d *Daemon) Stop() int {
	if d.Cmd.ProcessState != nil {
		return d.Cmd.ProcessState.ExitCode()
	}
	_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	stop := time.NewTimer(d.opts.StopWithin)
	defer stop.Stop()
	select {
	case <-d.done:
	case <-stop.C:
		_ = d.Cmd.Process.Kill()
		<-d.done
		d.t.Errorf("the daemon did not exit within %s of SIGTERM\n%s", d.opts.StopWithin, d.Stderr.String())
	}
	if d.opts.Key != "" && strings.Contains(d.Stderr.String(), d.opts.Key) {
		d.t.Error("the shared key appears in the daemon's log")
	}
	return d.Cmd.ProcessState.ExitCode()
}

// MetricsText returns the daemon's /metrics page ("" when it does not answer).
func (d *Daemon) MetricsText() string { return HTTPGet("http://" + d.Metrics + "/metrics") }

// WaitExit waits up to within for the daemon to exit by itself, and says whether it did.
func (d *Daemon) WaitExit(within time.Duration) bool {
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case err := <-d.done:
		d.done <- err
		return true
	case <-t.C:
		return false
	}
}
