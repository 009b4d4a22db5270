package daemon

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// BenchmarkFrontEndOverhead measures one authorization exchange (REQUEST -> RESPONSE) of a single-connect
// client, one session at a time, against the test server directly and through the daemon's TACACS+ front
// end (which forwards it over the agent's own multiplexed connection to the same server), in the same run.
// It reports the p50 and p99 latency of each; the front end's overhead is the difference of the p50s
// (docs/perf.md).
//
//	go test -run '^$' -bench FrontEndOverhead -benchtime 20000x ./daemon/
func BenchmarkFrontEndOverhead(b *testing.B) {
	key := []byte("bench-server-key-0123456789")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true, Users: map[string]tacplustest.User{"alice": {Password: "pw"}},
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: "show .*", Permit: true, Args: []string{"priv-lvl=15"}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	d, front := frontDaemon(b, key, srv.Addr(), "")

	run := func(b *testing.B, addr string, k []byte) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		codec, _ := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: k})
		rd := codec.NewReader(nc)
		req := &tacplus.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, User: "alice", Port: "pts/0", Args: []string{"service=shell", "cmd=show", "cmd-arg=version"}}
		var resp tacplus.AuthorResponse
		var buf []byte
		exchange := func(id uint32) time.Duration {
			start := time.Now()
			buf, err = codec.AppendPacket(buf[:0], tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAuthor, SeqNo: 1,
				SessionID: id, Flags: tacplus.FlagSingleConnect}, req)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := nc.Write(buf); err != nil {
				b.Fatal(err)
			}
			h, raw, err := rd.Next()
			if err != nil {
				b.Fatal(err)
			}
			if err := codec.DecodeBody(h, raw, &resp); err != nil || resp.Status != tacplus.AuthorStatusPassAdd || h.SessionID != id {
				b.Fatalf("%v %+v %v", h, resp, err)
			}
			return time.Since(start)
		}
		for i := range 200 { // warm up: connections, single-connect, caches
			exchange(uint32(0x10000 + i))
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			lat = append(lat, exchange(uint32(0x100000+i)))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
	}
	// The agent's Go API alone (the same request, the same server): what the front end adds on top of it is
	// front_end minus agent_api.
	agentAPI := func(b *testing.B) {
		a := d.cur.Load().agent
		req := agent.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, User: "alice", Port: "pts/0", Args: []string{"service=shell", "cmd=show", "cmd-arg=version"}}
		ctx := context.Background()
		one := func() time.Duration {
			start := time.Now()
			if _, err := a.Authorize(ctx, req); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		for range 200 {
			one()
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			lat = append(lat, one())
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
	}
	b.Run("direct", func(b *testing.B) { run(b, srv.Addr(), key) })
	b.Run("agent_api", agentAPI)
	b.Run("front_end", func(b *testing.B) { run(b, front, frontKey) })
}
