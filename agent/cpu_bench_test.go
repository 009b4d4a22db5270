package agent_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tq "github.com/facebookincubator/tacquito"
)

// externalServer runs cmd/tacplus-testserver as a process of its own (built once per benchmark run), so
// that the CPU this process uses (getrusage) is the client's alone. It agrees to single-connect and keeps
// per-request connections open, so every client gets the same server.
func externalServer(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "tacplus-testserver")
	build := exec.Command("go", "build", "-o", bin, "github.com/tacagent/tacagent/cmd/tacplus-testserver")
	if out, err := build.CombinedOutput(); err != nil {
		b.Skipf("building the test server: %v\n%s", err, out)
	}
	cfg := filepath.Join(b.TempDir(), "users.yaml")
	if err := os.WriteFile(cfg, []byte("users:\n  alice: {password: alice-pw}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-config", cfg, "-single-connect", "-keep-open", "-idle-timeout", "-1s")
	cmd.Env = append(os.Environ(), "TACPLUS_TESTSERVER_KEY="+string(testKey))
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

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs login from concurrent callers and reports auths/s and the client's CPU per
// authentication (getrusage of this process; the server runs in another).
func measure(b *testing.B, perCaller func() (login func() bool, done func())) {
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	var failed atomic.Int64
	cpu0, start := cpuTime(), time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		login, done := perCaller()
		defer done()
		for pb.Next() {
			if !login() {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d logins failed", n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "auths/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "client-CPU-µs/auth")
}

// BenchmarkClientCPU: PAP logins from 64 concurrent callers against the test server running as its own
// process; the client's CPU per authentication and its throughput, for the agent's Go API (one
// multiplexed connection, and ConnectionsPerServer 2) and for tacquito's client library (one connection
// per caller), in the same run against the same server.
func BenchmarkClientCPU(b *testing.B) {
	addr := externalServer(b)
	for _, conns := range []int{1, 2} {
		name := "agent"
		if conns > 1 {
			name = "agent-conns-2"
		}
		b.Run(name, func(b *testing.B) {
			s := server(addr)
			s.ConnectionsPerServer = conns
			h := benchAgent(b, s)
			ctx := context.Background()
			measure(b, func() (func() bool, func()) {
				return func() bool {
					_, err := h.Authenticate(ctx, pap("alice", "alice-pw"), nil)
					return err == nil
				}, func() {}
			})
		})
	}
	b.Run("tacquito-client", func(b *testing.B) {
		var sid atomic.Uint32
		measure(b, func() (func() bool, func()) {
			c, err := tq.NewClient(tq.SetClientDialer("tcp", addr, testKey))
			if err != nil {
				return func() bool { return false }, func() {}
			}
			return func() bool { return tacquitoPAP(c, sid.Add(1)) }, func() { c.Close() }
		})
	})
}
