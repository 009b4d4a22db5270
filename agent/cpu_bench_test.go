package agent_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	tq "github.com/facebookincubator/tacquito"

	"github.com/tacagent/tacagent/internal/benchserver"
)

// measure runs login from concurrent callers and reports auths/s and the client's CPU per
// authentication (getrusage of this process; the server runs in another).
func measure(b *testing.B, perCaller func() (login func() bool, done func())) {
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	var failed atomic.Int64
	cpu0, start := benchserver.CPU(), time.Now()
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
	elapsed, cpu := time.Since(start), benchserver.CPU()-cpu0
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
	addr := benchserver.Start(b, testKey)
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
