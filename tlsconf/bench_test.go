package tlsconf_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// benchParallelism callers per GOMAXPROCS, as in agent's benchmarks.
const benchParallelism = 32

// BenchmarkTLSvsPlaintext: PAP logins from concurrent callers multiplexed on one single-connect connection,
// plaintext (obfuscated) against TLS 1.3 (per-packet records, the default) and TLS with coalescing, same
// server code, same run (docs/perf.md, "TLS"). Goal: TLS >= 0.8x plaintext.
func BenchmarkTLSvsPlaintext(b *testing.B) {
	p := newPKI(b)
	for _, mode := range []string{"plaintext", "tls", "tls-coalesce"} {
		b.Run(mode, func(b *testing.B) {
			var srv *tacplustest.Server
			var s agent.Server
			switch mode {
			case "plaintext":
				srv = startTLSServer(b, nil, nil)
				s = agent.Server{Addr: srv.Addr(), Key: []byte("unused-over-tls"), Timeout: 5 * time.Second}
			default:
				srv = startTLSServer(b, serverTLS(p.server), nil)
				cs := p.clientSettings()
				cs.Coalesce = mode == "tls-coalesce"
				s = tlsServer(srv.Addr(), newDialer(b, cs))
			}
			h := newAgent(b, s)
			h.login(b, "alice", "alice-pw")
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			var failed atomic.Int64
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := h.Authenticate(ctx, pap("alice", "alice-pw"), nil); err != nil {
						failed.Add(1)
					}
				}
			})
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d logins failed", n)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "auths/s")
			b.ReportMetric(float64(srv.Stats().Connections), "conns")
		})
	}
}
