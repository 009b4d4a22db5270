package agent_test

import (
	"context"
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	tq "github.com/facebookincubator/tacquito"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// The benchmarks compare the agent with a baseline measured in the same run against the same server
// (docs/perf.md, "Actor core"). Each runs callers concurrently: benchParallelism per GOMAXPROCS.
const benchParallelism = 32

// benchServer serves alice without delay; it agrees to single-connect and keeps connections open for
// clients that do not ask (tacquito's client), so every client gets the same server.
func benchServer(b *testing.B) *tacplustest.Server {
	return startServer(b, func(c *tacplustest.Config) { c.KeepOpen = true })
}

func benchAgent(b *testing.B, s agent.Server) *harness {
	h := newAgent(b, agent.Config{Servers: []agent.Server{s}})
	h.login(b, "alice", "alice-pw") // connect and settle single-connect before the clock starts
	return h
}

// runAuths runs PAP logins from concurrent callers and reports auths/s.
func runAuths(b *testing.B, login func() error) {
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	var failed atomic.Int64
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := login(); err != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d logins failed", n)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "auths/s")
}

// BenchmarkMultiplexing: PAP logins from concurrent callers, multiplexed on one single-connect connection,
// against one connection per session (the pam_tacplus way: NoSingleConnect), same server. Goal: >= 5x.
func BenchmarkMultiplexing(b *testing.B) {
	for _, mode := range []struct {
		name string
		off  bool
	}{{"single-connect", false}, {"connection-per-session", true}} {
		b.Run(mode.name, func(b *testing.B) {
			srv := startServer(b, nil) // closes a connection after its session when single-connect is off
			s := server(srv.Addr())
			s.NoSingleConnect = mode.off
			h := benchAgent(b, s)
			ctx := context.Background()
			runAuths(b, func() error {
				_, err := h.Authenticate(ctx, pap("alice", "alice-pw"), nil)
				return err
			})
			b.ReportMetric(float64(srv.Stats().Connections)/float64(b.N), "conns/auth")
		})
	}
}

// BenchmarkVsTacquitoClient: the agent's Go API against tacquito's client library, same server, same
// number of concurrent callers. tacquito's client is one synchronous connection, so each caller has its
// own; the agent multiplexes all of them on one. Goal: agent >= 1.3x.
func BenchmarkVsTacquitoClient(b *testing.B) {
	b.Run("agent", func(b *testing.B) {
		srv := benchServer(b)
		h := benchAgent(b, server(srv.Addr()))
		ctx := context.Background()
		runAuths(b, func() error {
			_, err := h.Authenticate(ctx, pap("alice", "alice-pw"), nil)
			return err
		})
	})
	b.Run("tacquito-client", func(b *testing.B) {
		srv := benchServer(b)
		b.ReportAllocs()
		b.SetParallelism(benchParallelism)
		var sid atomic.Uint32
		var failed atomic.Int64
		start := time.Now()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			c, err := tq.NewClient(tq.SetClientDialer("tcp", srv.Addr(), testKey))
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			for pb.Next() {
				if !tacquitoPAP(c, sid.Add(1)) {
					failed.Add(1)
				}
			}
		})
		b.StopTimer()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d logins failed", n)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "auths/s")
	})
}

// tacquitoPAP runs one PAP login with tacquito's client, building the packets as its callers must.
func tacquitoPAP(c *tq.Client, sid uint32) bool {
	h := tq.NewHeader(tq.SetHeaderVersion(tq.Version{MajorVersion: tq.MajorVersion, MinorVersion: tq.MinorVersionOne}),
		tq.SetHeaderType(tq.Authenticate), tq.SetHeaderSeqNo(1), tq.SetHeaderSessionID(tq.SessionID(sid)))
	start := tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
		tq.SetAuthenStartType(tq.AuthenTypePAP), tq.SetAuthenStartService(tq.AuthenServiceLogin),
		tq.SetAuthenStartUser("alice"), tq.SetAuthenStartData("alice-pw"))
	resp, err := c.Send(tq.NewPacket(tq.SetPacketHeader(h), tq.SetPacketBodyUnsafe(start)))
	if err != nil {
		return false
	}
	var r tq.AuthenReply
	return tq.Unmarshal(resp.Body, &r) == nil && r.Status == tq.AuthenStatusPass
}

// BenchmarkHeapPerSession: 10,000 authentications in flight at once on one connection (the server reads
// them and never answers), heap in use per session once all are in flight. Goal: <= 8 KiB. The figure
// includes everything each request costs in this process: the caller's side of the API, the supervisor's
// bookkeeping, the session actor and its machine, the connection's route, and the test server's entry for
// the session; goroutine stacks are not heap (the callers' goroutines belong to the callers).
func BenchmarkHeapPerSession(b *testing.B) {
	const n = heapSessions
	for range b.N {
		// The timer runs through the whole iteration, so that b.N stays small (each one takes about a second).
		srv := startServer(b, nil)
		s := server(srv.Addr())
		s.MaxInFlight, s.Timeout = 2*n, time.Minute
		h := benchAgent(b, s)
		srv.SetFaults(tacplustest.Faults{DropReplies: tacplustest.Always})
		before := heapInUse()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, n)
		for range n {
			go func() {
				h.Authenticate(ctx, pap("alice", "alice-pw"), nil)
				done <- struct{}{}
			}()
		}
		eventually(b, time.Minute, "all sessions in flight", func() bool { return srv.Stats().Sessions == n+1 })
		if g := runtime.NumGoroutine(); g > n+200 {
			b.Errorf("%d goroutines with %d sessions in flight: more than the callers'", g, n)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "heap-B/session")
		cancel()
		for range n {
			<-done
		}
		h.Close(context.Background())
		srv.Close()
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkOverhead: one PAP login at a time. Each iteration runs a bare exchange (the codec's START and
// REPLY on a raw socket, no actors) and an agent login against the same server, alternately, so both see
// the same conditions. It reports both p50s and the agent's overhead, their difference. Goal: <= 50 µs.
func BenchmarkOverhead(b *testing.B) {
	srv := benchServer(b)
	h := benchAgent(b, server(srv.Addr()))
	codec, err := tacplus.NewCodec(tacplus.Options{Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rd := codec.NewReader(conn)
	start := &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP,
		Service: tacplus.ServiceLogin, User: "alice", Data: "alice-pw"}
	buf := make([]byte, 0, 256)
	reply := new(tacplus.AuthenReply)
	bare := func() {
		sid, _ := tacplus.NewSessionID()
		hdr := tacplus.Header{Version: tacplus.VersionByte(tacplus.MinorVersionOne), Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: sid}
		buf, err = codec.AppendPacket(buf[:0], hdr, start)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
		rh, body, err := rd.Next()
		if err == nil {
			err = codec.DecodeBody(rh, body, reply)
		}
		if err != nil || reply.Status != tacplus.AuthenStatusPass || rh.SessionID != sid {
			b.Fatalf("bare exchange: %v %v", err, reply.Status)
		}
	}
	ctx := context.Background()
	bareLat := make([]time.Duration, 0, b.N)
	agentLat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		bare()
		t1 := time.Now()
		if _, err := h.Authenticate(ctx, pap("alice", "alice-pw"), nil); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		bareLat, agentLat = append(bareLat, t1.Sub(t0)), append(agentLat, t2.Sub(t1))
	}
	b.StopTimer()
	pb, pa := p50(bareLat), p50(agentLat)
	b.ReportMetric(float64(pb.Nanoseconds())/1e3, "bare-p50-µs")
	b.ReportMetric(float64(pa.Nanoseconds())/1e3, "agent-p50-µs")
	b.ReportMetric(float64((pa-pb).Nanoseconds())/1e3, "overhead-µs")
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// heapSessions is the number of sessions held in flight by BenchmarkHeapPerSession.
const heapSessions = 10000
