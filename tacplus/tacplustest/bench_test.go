package tacplustest

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// benchClient is a lean pipelined PAP client on one single-connect connection: it keeps window sessions
// in flight and writes every START it can in one Write.
type benchClient struct {
	nc    net.Conn
	br    *bufio.Reader
	rd    *tacplus.Reader
	codec *tacplus.Codec
	out   []byte
	next  uint32
	start tacplus.AuthenStart
}

func newBenchClient(b *testing.B, addr string) *benchClient {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	codec, err := tacplus.NewCodec(tacplus.Options{Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	c := &benchClient{nc: nc, br: br, rd: codec.NewReader(br), codec: codec, start: *papStart("bench", "bench-pw")}
	// Negotiate single-connect with a first session (section 4.3) before pipelining.
	c.queue(tacplus.FlagSingleConnect)
	if err := c.flush(); err != nil {
		b.Fatal(err)
	}
	if h, err := c.recv(); err != nil || h.Flags&tacplus.FlagSingleConnect == 0 {
		b.Fatalf("single-connect: %v %v", h, err)
	}
	return c
}

func (c *benchClient) queue(flags tacplus.HeaderFlag) {
	c.next++
	var err error
	c.out, err = c.codec.AppendPacket(c.out, tacplus.Header{SessionID: c.next, SeqNo: 1, Flags: flags}, &c.start)
	if err != nil {
		panic(err)
	}
}

func (c *benchClient) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

func (c *benchClient) recv() (tacplus.Header, error) {
	h, body, err := c.rd.Next()
	if err != nil {
		return h, err
	}
	if len(body) == 0 || tacplus.AuthenStatus(body[0]) != tacplus.AuthenStatusPass {
		return h, fmt.Errorf("session 0x%x did not pass", h.SessionID)
	}
	return h, nil
}

// run completes n authentications with window in flight.
func (c *benchClient) run(n, window int) error {
	sent, done := 0, 0
	for ; sent < n && sent < window; sent++ {
		c.queue(0)
	}
	if err := c.flush(); err != nil {
		return err
	}
	for done < n {
		if _, err := c.recv(); err != nil {
			return err
		}
		done++
		if sent < n {
			c.queue(0)
			sent++
		}
		if c.br.Buffered() == 0 { // nothing more to read right now: send what is queued
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func benchServer(b *testing.B) *Server {
	return startServer(b, Config{Users: map[string]User{"bench": {Password: "bench-pw"}}, SingleConnect: true,
		Logf: func(string, ...any) {}})
}

// BenchmarkPAPRoundTrip is one authentication at a time: the loopback round trip dominates.
func BenchmarkPAPRoundTrip(b *testing.B) {
	srv := benchServer(b)
	c := newBenchClient(b, srv.Addr())
	defer c.nc.Close()
	b.ResetTimer()
	start := time.Now()
	if err := c.run(b.N, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "auths/s")
}

// BenchmarkPAPPipelined keeps many sessions in flight on single-connect connections: the server's
// throughput as the benchmarks' fast peer (client and server share the machine's cores).
func BenchmarkPAPPipelined(b *testing.B) {
	for _, conns := range []int{1, 4} {
		for _, window := range []int{16, 128} {
			b.Run(fmt.Sprintf("conns=%d/window=%d", conns, window), func(b *testing.B) {
				srv := benchServer(b)
				clients := make([]*benchClient, conns)
				for i := range clients {
					clients[i] = newBenchClient(b, srv.Addr())
					defer clients[i].nc.Close()
				}
				b.ResetTimer()
				start := time.Now()
				errs := make(chan error, conns)
				for i, c := range clients {
					n := b.N / conns
					if i == 0 {
						n += b.N % conns
					}
					go func() { errs <- c.run(n, window) }()
				}
				for range conns {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "auths/s")
			})
		}
	}
}
