package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/benchserver"
	"github.com/tacagent/tacagent/localapi"
)

// BenchmarkLocalAPI: PAP logins through the daemon's local API (the Go client with kept connections,
// WithKeptConnections, as a long-running caller uses it; 64 concurrent callers, each with its own rem_addr so that the per-(user, rem_addr) rate limit does not
// serialise them) against the test server in its own process. The daemon logs to a file at info (as it
// runs) and at error (no per-login line), in the same run: the difference in CPU per authentication is the
// cost of per-login logging. The CPU figure is this process's: daemon and callers, not the server.
func BenchmarkLocalAPI(b *testing.B) {
	key := []byte("bench-key")
	addr := benchserver.Start(b, key)
	// The third variant opens a connection per request (the Go client's default, the PAM module's and the
	// CLI's way): the baseline of kept connections in the same run.
	for _, v := range []struct {
		lvl  zerolog.Level
		kept bool
	}{{zerolog.InfoLevel, true}, {zerolog.ErrorLevel, true}, {zerolog.InfoLevel, false}} {
		lvl := v.lvl
		name := "log-" + lvl.String()
		var opts []localapi.ClientOption
		if v.kept {
			opts = append(opts, localapi.WithKeptConnections(64))
		} else {
			name += "/connection-per-request"
		}
		b.Run(name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "daemon.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			log := zerolog.New(f).Level(lvl).With().Timestamp().Logger()
			d, err := New(Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: addr, Key: key, Timeout: 5 * time.Second}}},
				Groups: []string{"default"}}, log)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = d.Shutdown(ctx)
			}()
			sock := filepath.Join(b.TempDir(), "tacagent.sock")
			if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
				b.Fatal(err)
			}
			c := localapi.NewClient(sock, opts...)
			defer c.Close()
			ctx := context.Background()
			login := func(remAddr string) error {
				_, err := c.Authenticate(ctx, localapi.AuthenRequest{User: "alice", Password: localapi.Secret("alice-pw"),
					Type: localapi.TypePAP, RemAddr: remAddr}, nil)
				return err
			}
			if err := login("warm-up"); err != nil {
				b.Fatal(err)
			}
			var callers atomic.Int64
			var failed atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32)
			cpu0, start := benchserver.CPU(), time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				remAddr := fmt.Sprintf("10.0.0.%d", callers.Add(1))
				for pb.Next() {
					if err := login(remAddr); err != nil {
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
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "CPU-µs/auth")
		})
	}
}
