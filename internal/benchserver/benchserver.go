// Package benchserver runs the project's TACACS+ test server (cmd/tacplus-testserver) as a process of its
// own for benchmarks, so that the CPU a benchmark's process uses (getrusage) is the client's alone. It is
// for tests only and imports no project package.
package benchserver

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Start builds cmd/tacplus-testserver (skipping the benchmark when the go tool cannot) and runs it with
// key, one user alice (password alice-pw), single-connect agreed and per-request connections kept open,
// never closing idle connections. It returns the server's address; the process ends with the benchmark.
func Start(b testing.TB, key []byte) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "tacplus-testserver")
	build := exec.Command("go", "build", "-o", bin, "github.com/tacagent/tacagent/cmd/tacplus-testserver")
	if out, err := build.CombinedOutput(); err != nil {
		b.Skipf("building the test server: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(cfg, []byte("users:\n  alice: {password: alice-pw}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-config", cfg, "-single-connect", "-keep-open", "-idle-timeout", "-1s")
	cmd.Env = append(os.Environ(), "TACPLUS_TESTSERVER_KEY="+string(key))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("test server: %v", err)
	}
	return strings.TrimSpace(line)
}

// CPU is this process's user and system CPU time so far (getrusage).
func CPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
