package proxy

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// TestEnableCHAPAndUnsupported: an ASCII ENABLE goes through with its service and level; CHAP, MS-CHAP and
// MS-CHAP-V2 STARTs whose response the client computed are forwarded as they are (the server verifies them:
// the right password passes, a wrong one fails); malformed challenge data and SENDAUTH get a clean ERROR
// that says why, and nothing of them reaches the server.
func TestEnableCHAPAndUnsupported(t *testing.T) {
	srv := backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), nil)
	c := dialRaw(t, f.addr, localKey)
	v0 := tacplus.VersionByte(0)
	c.send(tacplus.Header{Version: v0, Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: 1, Flags: tacplus.FlagSingleConnect},
		&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 15, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceEnable, User: "alice"})
	h, b, err := c.recv()
	if err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusGetPass {
		t.Fatalf("%v %+v %v", h, b, err)
	}
	c.send(tacplus.Header{Version: v0, Type: tacplus.TypeAuthen, SeqNo: 3, SessionID: 1}, &tacplus.AuthenContinue{UserMsg: "alice-enable"})
	if h, b, err = c.recv(); err != nil || h.SeqNo != 4 || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
		t.Fatalf("enable: %v %+v %v", h, b, err)
	}

	chal := []byte("0123456789abcdef")
	chapData := func(pw string) string {
		r := fsm.CHAPResponse(7, pw, chal)
		return string(append(append([]byte{7}, chal...), r[:]...))
	}
	mschap := func(pw string) string {
		r := fsm.MSCHAPv1Response(pw, [8]byte(chal[:8]))
		return string(append(append([]byte{7}, chal[:8]...), r[:]...))
	}
	peer := [16]byte([]byte("fedcba9876543210"))
	mschap2 := func(pw string) string {
		r := fsm.MSCHAPv2Response([16]byte(chal), peer, "alice", pw)
		return string(append(append([]byte{7}, chal...), r[:]...))
	}
	v1 := tacplus.VersionByte(1)
	id := uint32(10)
	for _, tc := range []struct {
		typ  tacplus.AuthenType
		data string
		want tacplus.AuthenStatus
	}{
		{tacplus.AuthenTypeCHAP, chapData("alice-pw"), tacplus.AuthenStatusPass},
		{tacplus.AuthenTypeCHAP, chapData("wrong"), tacplus.AuthenStatusFail},
		{tacplus.AuthenTypeMSCHAP, mschap("alice-pw"), tacplus.AuthenStatusPass},
		{tacplus.AuthenTypeMSCHAPv2, mschap2("alice-pw"), tacplus.AuthenStatusPass},
		{tacplus.AuthenTypeMSCHAPv2, mschap2("wrong"), tacplus.AuthenStatusFail},
	} {
		id++
		c.send(tacplus.Header{Version: v1, Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: id},
			&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tc.typ, Service: tacplus.ServiceLogin, User: "alice", Data: tc.data})
		h, b, err := c.recv()
		if err != nil || h.SessionID != id {
			t.Fatalf("%s: %v %v", tc.typ, h, err)
		}
		if r := b.(*tacplus.AuthenReply); r.Status != tc.want {
			t.Fatalf("%s: %+v, want %s", tc.typ, r, tc.want)
		}
	}
	before := srv.Stats().Sessions
	for _, start := range []*tacplus.AuthenStart{
		{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypeMSCHAP, Service: tacplus.ServiceLogin, User: "alice", Data: strings.Repeat("x", 33)},
		{Action: tacplus.ActionSendAuth, PrivLvl: 1, Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin, User: "alice"},
	} {
		id++
		c.send(tacplus.Header{Version: v1, Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: id}, start)
		h, b, err := c.recv()
		if err != nil || h.SessionID != id {
			t.Fatalf("%v %v", h, err)
		}
		if r := b.(*tacplus.AuthenReply); r.Status != tacplus.AuthenStatusError {
			t.Fatalf("%s %s: %+v, want ERROR", start.Action, start.Type, r)
		}
	}
	if st := srv.Stats(); st.Sessions != before {
		t.Fatalf("a malformed START or a SENDAUTH reached the server: %+v", st)
	}
	if n := f.counter(f.m.Proxy.Rejected.WithLabelValues(rejectUnsupported)); n != 1 {
		t.Errorf("unsupported %v, want 1 (SENDAUTH)", n)
	}
}

// TestShutdownWithClients: Shutdown closes an idle single-connect client at once, lets a conversation in
// progress run until its deadline, then closes it; nothing hangs and every goroutine ends (goleak).
func TestShutdownWithClients(t *testing.T) {
	srv := backend(t, nil)
	a := newAgent(t, srv.Addr())
	s, err := New(Config{Key: localKey, Backend: AgentBackend(a, "", ""), Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dialRaw(t, addr, localKey)
	idle.send(papHeader(1, tacplus.FlagSingleConnect), papStart("alice", "alice-pw"))
	if _, b, err := idle.recv(); err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
		t.Fatalf("%+v %v", b, err)
	}
	busy := dialRaw(t, addr, localKey)
	busy.send(tacplus.Header{Version: tacplus.VersionByte(0), Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: 2, Flags: tacplus.FlagSingleConnect},
		&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "bob"})
	if _, b, err := busy.recv(); err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusGetPass {
		t.Fatalf("%+v %v", b, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- s.Shutdown(ctx) }()
	expectClosed(t, idle) // at once, not at the deadline
	if el := time.Since(start); el > 400*time.Millisecond {
		t.Errorf("the idle client was closed after %v", el)
	}
	expectClosed(t, busy)
	if err := <-errc; err == nil {
		t.Error("Shutdown reported no error although a session was cut at its deadline")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	waitFor(t, "the upstream conversation aborted", func() bool { return srv.Stats().Aborts == 1 })
	if _, err := dialRawErr(addr); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoSecrets: at debug level, logins (PAP, ASCII with a hidden code), a wrong-key client and an
// authorization with arguments leave no password, key, code or argument value in the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	srv := backend(t, nil)
	var logs syncBuffer
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), func(c *Config) {
		c.Log = zerolog.New(&logs).Level(zerolog.DebugLevel)
	})
	c := dialRaw(t, f.addr, localKey)
	c.send(papHeader(1, tacplus.FlagSingleConnect), papStart("alice", "alice-pw"))
	if _, _, err := c.recv(); err != nil {
		t.Fatal(err)
	}
	v0 := tacplus.VersionByte(0)
	c.send(tacplus.Header{Version: v0, Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: 2},
		&tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "bob"})
	for _, step := range []struct {
		seq    uint8
		answer string
	}{{3, "bob-pw"}, {5, "123456"}} {
		if _, _, err := c.recv(); err != nil {
			t.Fatal(err)
		}
		c.send(tacplus.Header{Version: v0, Type: tacplus.TypeAuthen, SeqNo: step.seq, SessionID: 2}, &tacplus.AuthenContinue{UserMsg: step.answer})
	}
	if _, b, err := c.recv(); err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
		t.Fatalf("%+v %v", b, err)
	}
	c.send(tacplus.Header{Version: v0, Type: tacplus.TypeAuthor, SeqNo: 1, SessionID: 3},
		&tacplus.AuthorRequest{Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin,
			User: "alice", Args: []string{"service=shell", "cmd=show", "cmd-arg=secret-argument-value"}})
	if _, _, err := c.recv(); err != nil {
		t.Fatal(err)
	}
	bad := dialRaw(t, f.addr, []byte("wrong-key-but-still-a-secret-0"))
	bad.send(papHeader(4, 0), papStart("alice", "alice-pw"))
	expectClosed(t, bad)
	waitFor(t, "the bad packet logged", func() bool { return strings.Contains(logs.String(), "bad_secret") })
	out := logs.String()
	for _, secret := range []string{"alice-pw", "bob-pw", "123456", "secret-argument-value", string(localKey), "wrong-key-but-still", string(serverKey)} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"cmd":"show"`) || !strings.Contains(out, `"user":"bob"`) {
		t.Errorf("the log lost what it should say:\n%s", out)
	}
}

// TestClientThatDoesNotRead: a reply the client never reads is cut by the write deadline; the connection
// ends and its goroutines exit (net.Pipe has no buffer, so the first unread reply blocks).
func TestClientThatDoesNotRead(t *testing.T) {
	m := metrics.NewProxy()
	s, err := New(Config{Key: localKey, Backend: stubBackend{}, Log: testLog(t), WriteTimeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.m = m
	cli, srv := net.Pipe()
	defer cli.Close()
	c := newClient(s, srv, peer{known: true})
	done := make(chan struct{})
	go func() {
		c.serve()
		close(done)
	}()
	codec, _ := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: localKey})
	pkt, _ := codec.Marshal(papHeader(1, tacplus.FlagSingleConnect), papStart("alice", "pw"))
	if _, err := cli.Write(pkt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection of a client that does not read never ended")
	}
	if n := testutil.ToFloat64(m.Timeouts.WithLabelValues("write")); n != 1 {
		t.Errorf("write timeouts %v", n)
	}
}

// flakyListener fails its first Accepts, as a listener out of descriptors does (EMFILE).
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsPass: accept errors such as EMFILE do not stop the front end; it accepts again.
func TestAcceptErrorsPass(t *testing.T) {
	srv := backend(t, nil)
	s, err := New(Config{Key: localKey, Backend: AgentBackend(newAgent(t, srv.Addr()), "", ""), Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	fl.fails.Store(3)
	served := make(chan error, 1)
	go func() { served <- s.Serve(fl) }()
	c := dialRaw(t, ln.Addr().String(), localKey)
	c.send(papHeader(1, 0), papStart("alice", "alice-pw"))
	if _, b, err := c.recv(); err != nil || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
		t.Fatalf("%+v %v", b, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.nc.Close()
	if err := s.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}
