package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// expectClosed reads until the front end closes the connection; any reply before is a failure.
func expectClosed(t *testing.T, c *rawClient) {
	t.Helper()
	h, b, err := c.recv()
	if err == nil {
		t.Fatalf("got a reply %v %+v, want the connection closed", h, b)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v, want the connection closed", err)
	}
}

// papOK runs one PAP login on a fresh connection and checks it passes: the front end still serves others.
func papOK(t *testing.T, addr string, id uint32) {
	t.Helper()
	c := dialRaw(t, addr, localKey)
	c.send(papHeader(id, 0), papStart("alice", "alice-pw"))
	h, b, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := b.(*tacplus.AuthenReply); !ok || r.Status != tacplus.AuthenStatusPass || h.SessionID != id || h.SeqNo != 2 {
		t.Fatalf("good client got %v %+v", h, b)
	}
}

func TestBadClientsAffectOnlyThemselves(t *testing.T) {
	srv := backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })

	t.Run("wrong key", func(t *testing.T) {
		c := dialRaw(t, f.addr, []byte("not-the-local-key-at-all-000"))
		c.send(papHeader(1, 0), papStart("alice", "alice-pw"))
		expectClosed(t, c)
		if n := f.counter(f.m.Proxy.BadPackets.WithLabelValues("bad_secret")); n != 1 {
			t.Errorf("bad_secret counted %v", n)
		}
		papOK(t, f.addr, 2)
	})
	t.Run("garbage", func(t *testing.T) {
		c := dialRaw(t, f.addr, localKey)
		if _, err := c.nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
		if n := f.counter(f.m.Proxy.BadPackets.WithLabelValues("version")); n != 1 {
			t.Errorf("version counted %v", n)
		}
	})
	t.Run("unencrypted flag", func(t *testing.T) {
		c := dialRaw(t, f.addr, localKey)
		codec, _ := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Unencrypted: true, AllowUnencrypted: true})
		pkt, err := codec.Marshal(papHeader(3, tacplus.FlagUnencrypted), papStart("alice", "alice-pw"))
		if err != nil {
			t.Fatal(err)
		}
		c.nc.Write(pkt)
		expectClosed(t, c)
		if n := f.counter(f.m.Proxy.BadPackets.WithLabelValues("flags")); n != 1 {
			t.Errorf("flags counted %v", n)
		}
	})
	t.Run("continue for no session", func(t *testing.T) {
		c := dialRaw(t, f.addr, localKey)
		c.send(tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAuthen, SeqNo: 3, SessionID: 9}, &tacplus.AuthenContinue{UserMsg: "pw"})
		expectClosed(t, c)
		if n := f.counter(f.m.Proxy.BadPackets.WithLabelValues(badUnexpected)); n != 1 {
			t.Errorf("unexpected counted %v", n)
		}
	})
	t.Run("a reply from a client", func(t *testing.T) {
		c := dialRaw(t, f.addr, localKey)
		scodec, _ := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleServer, Key: localKey})
		pkt, _ := scodec.Marshal(tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAuthen, SeqNo: 2, SessionID: 9}, &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass})
		c.nc.Write(pkt)
		expectClosed(t, c)
	})
	t.Run("stalled mid-packet", func(t *testing.T) {
		c := dialRaw(t, f.addr, localKey)
		c.nc.Write([]byte{0xc1, 0x01, 0x01}) // a third of a header, then nothing
		// Meanwhile others are served.
		papOK(t, f.addr, 4)
		start := time.Now()
		expectClosed(t, c)
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("the stalled client was cut after %v", el)
		}
		waitFor(t, "the read timeout counted", func() bool { return f.counter(f.m.Proxy.Timeouts.WithLabelValues("read")) >= 1 })
	})
	t.Run("a session longer than idle_timeout is not cut", func(t *testing.T) {
		c := dialRaw(t, f.addr, localKey)
		c.send(papHeader(30, 0), papStart("slow", "slow-pw")) // the server holds its answer 700 ms
		if _, b, err := c.recv(); err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
			t.Fatalf("%+v %v", b, err)
		}
	})
	t.Run("second session without single-connect", func(t *testing.T) {
		c := dialRaw(t, f.addr, localKey)
		c.send(tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: 20},
			&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "alice"})
		if _, b, err := c.recv(); err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusGetPass {
			t.Fatalf("%+v %v", b, err)
		}
		c.send(papHeader(21, 0), papStart("alice", "alice-pw"))
		expectClosed(t, c)
		if n := f.counter(f.m.Proxy.BadPackets.WithLabelValues(badSecondStart)); n != 1 {
			t.Errorf("second_session counted %v", n)
		}
	})
	if st := srv.Stats(); st.BadPackets != 0 || st.ProtocolErrors != 0 {
		t.Errorf("a bad client reached the server: %+v", st)
	}
}

func TestLimits(t *testing.T) {
	srv := backend(t, nil)
	a := newAgent(t, srv.Addr())

	t.Run("sessions per client", func(t *testing.T) {
		f := startFront(t, AgentBackend(a, "", ""), func(c *Config) { c.MaxSessionsPerClient = 2 })
		c := dialRaw(t, f.addr, localKey)
		for id := uint32(1); id <= 3; id++ {
			c.send(papHeader(id, tacplus.FlagSingleConnect), papStart("slow", "slow-pw"))
		}
		got := map[uint32]tacplus.AuthenStatus{}
		for range 3 {
			h, b, err := c.recv()
			if err != nil {
				t.Fatal(err)
			}
			got[h.SessionID] = b.(*tacplus.AuthenReply).Status
			if h.Flags&tacplus.FlagSingleConnect == 0 {
				t.Error("single-connect not echoed")
			}
		}
		if got[1] != tacplus.AuthenStatusPass || got[2] != tacplus.AuthenStatusPass || got[3] != tacplus.AuthenStatusError {
			t.Fatalf("replies %v", got)
		}
		if n := f.counter(f.m.Proxy.Rejected.WithLabelValues(rejectClientSessions)); n != 1 {
			t.Errorf("rejected %v", n)
		}
	})
	t.Run("connection share of a non-root uid", func(t *testing.T) {
		uid := uint32(1000)
		f := startFront(t, AgentBackend(a, "", ""), func(c *Config) {
			c.ConnectionShare = 2
			c.owner = func(string, string) (uint32, error) { return uid, nil }
		})
		c1, c2 := dialRaw(t, f.addr, localKey), dialRaw(t, f.addr, localKey)
		waitFor(t, "two clients", func() bool { return f.counter(f.m.Proxy.Clients) == 2 })
		expectClosed(t, dialRaw(t, f.addr, localKey))
		if n := f.counter(f.m.Proxy.Rejected.WithLabelValues(rejectConnShare)); n != 1 {
			t.Errorf("rejected %v", n)
		}
		c1.nc.Close()
		c2.nc.Close()
		waitFor(t, "the share freed", func() bool { return f.counter(f.m.Proxy.Clients) == 0 })
		papOK(t, f.addr, 5)
	})
	t.Run("root is not shared out", func(t *testing.T) {
		f := startFront(t, AgentBackend(a, "", ""), func(c *Config) {
			c.ConnectionShare = 1
			c.owner = func(string, string) (uint32, error) { return 0, nil }
		})
		dialRaw(t, f.addr, localKey)
		waitFor(t, "one client", func() bool { return f.counter(f.m.Proxy.Clients) == 1 })
		papOK(t, f.addr, 6)
	})
	t.Run("max clients", func(t *testing.T) {
		f := startFront(t, AgentBackend(a, "", ""), func(c *Config) { c.MaxClients = 1 })
		dialRaw(t, f.addr, localKey)
		waitFor(t, "one client", func() bool { return f.counter(f.m.Proxy.Clients) == 1 })
		expectClosed(t, dialRaw(t, f.addr, localKey))
		if n := f.counter(f.m.Proxy.Rejected.WithLabelValues(rejectMaxClients)); n != 1 {
			t.Errorf("rejected %v", n)
		}
	})
	t.Run("unknown owner is refused", func(t *testing.T) {
		f := startFront(t, AgentBackend(a, "", ""), func(c *Config) {
			c.owner = func(string, string) (uint32, error) { return 0, errors.New("not found") }
		})
		expectClosed(t, dialRaw(t, f.addr, localKey))
		if n := f.counter(f.m.Proxy.Rejected.WithLabelValues(rejectPeerUnknown)); n != 1 {
			t.Errorf("rejected %v", n)
		}
	})
	t.Run("listen refuses a non-loopback address", func(t *testing.T) {
		if ln, err := Listen("0.0.0.0:0", false); err == nil {
			ln.Close()
			t.Fatal("listened on 0.0.0.0 without allow_nonloopback")
		}
	})
}

// TestRateLimit: past the free attempts the front end answers FAIL itself and the server never sees the
// password.
func TestRateLimit(t *testing.T) {
	srv := backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), nil)
	c := dialRaw(t, f.addr, localKey)
	for i := range 7 {
		c.send(papHeader(uint32(100+i), tacplus.FlagSingleConnect), papStart("alice", "guess"))
		_, b, err := c.recv()
		if err != nil {
			t.Fatal(err)
		}
		r := b.(*tacplus.AuthenReply)
		if r.Status != tacplus.AuthenStatusFail {
			t.Fatalf("attempt %d: %+v", i, r)
		}
		if limited := strings.Contains(r.ServerMsg, "too many failed"); limited != (i >= 5) {
			t.Fatalf("attempt %d: %q", i, r.ServerMsg)
		}
	}
	if st := srv.Stats(); st.AuthenFail != 5 {
		t.Errorf("the server saw %d attempts, want 5", st.AuthenFail)
	}
	if n := f.counter(f.m.Proxy.RateLimited); n != 2 {
		t.Errorf("rate_limited %v", n)
	}
}

// TestConversation: a client that aborts gets no reply and the server sees the abort; a client that does
// not answer a prompt is cut and its upstream session aborted.
func TestConversation(t *testing.T) {
	srv := backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), func(c *Config) { c.ConversationTimeout = 300 * time.Millisecond })
	ascii := func(c *rawClient, id uint32) {
		t.Helper()
		c.send(tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: id, Flags: tacplus.FlagSingleConnect},
			&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "bob"})
		h, b, err := c.recv()
		if err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusGetPass || !b.(*tacplus.AuthenReply).NoEcho() || h.SeqNo != 2 {
			t.Fatalf("%v %+v %v", h, b, err)
		}
	}
	c := dialRaw(t, f.addr, localKey)
	ascii(c, 50)
	c.send(tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAuthen, SeqNo: 3, SessionID: 50}, &tacplus.AuthenContinue{Flags: tacplus.FlagAbort})
	waitFor(t, "the server saw the abort", func() bool { return srv.Stats().Aborts == 1 })
	// The connection still serves: the next session passes.
	c.send(papHeader(51, tacplus.FlagSingleConnect), papStart("alice", "alice-pw"))
	if h, b, err := c.recv(); err != nil || h.SessionID != 51 || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
		t.Fatalf("after the abort: %v %+v %v", h, b, err)
	}

	c2 := dialRaw(t, f.addr, localKey)
	ascii(c2, 60)
	expectClosed(t, c2) // no answer to the prompt within ConversationTimeout
	waitFor(t, "the upstream session aborted", func() bool { return srv.Stats().Aborts == 2 })
	if n := f.counter(f.m.Proxy.Timeouts.WithLabelValues("conversation")); n != 1 {
		t.Errorf("conversation timeouts %v", n)
	}
}
