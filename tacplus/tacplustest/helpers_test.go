package tacplustest

import (
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/tacplus"
)

// testKey is the shared secret of the tests' server.
var testKey = []byte("test-key")

// testTimeout bounds every wait in these tests.
const testTimeout = 5 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer starts a server for one test and closes it when the test ends.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// client is the exported Client with test-failing helpers.
type client struct {
	*Client
	t testing.TB
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	return dialKey(t, addr, testKey)
}

func dialKey(t testing.TB, addr string, key []byte) *client {
	t.Helper()
	c, err := Dial(addr, key)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Timeout = testTimeout
	t.Cleanup(func() { c.Close() })
	return &client{Client: c, t: t}
}

// send writes one packet; a zero Version takes the codec's default for the body.
func (c *client) send(h tacplus.Header, b tacplus.Body) {
	c.t.Helper()
	if err := c.Send(h, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) recv() (tacplus.Header, tacplus.Body, error) { return c.Recv() }

// mustRecv is recv that fails the test on error.
func (c *client) mustRecv() (tacplus.Header, tacplus.Body) {
	c.t.Helper()
	h, b, err := c.recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return h, b
}

// authen sends an authentication packet and returns the REPLY.
func (c *client) authen(h tacplus.Header, b tacplus.Body) (tacplus.Header, *tacplus.AuthenReply) {
	c.t.Helper()
	c.send(h, b)
	rh, rb := c.mustRecv()
	r, ok := rb.(*tacplus.AuthenReply)
	if !ok {
		c.t.Fatalf("got %T, want an authentication REPLY", rb)
	}
	return rh, r
}

// expectClosed asserts that the server closes the connection without sending anything more.
func (c *client) expectClosed() {
	c.t.Helper()
	_, _, err := c.recv()
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("want the server to close the connection, got %v", err)
	}
}

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, testTimeout, what, cond)
}

// hdr builds a request header.
func hdr(session uint32, seq uint8, flags tacplus.HeaderFlag) tacplus.Header {
	return tacplus.Header{SessionID: session, SeqNo: seq, Flags: flags}
}

// papStart is a PAP login START (section 5.4.2.2).
func papStart(user, password string) *tacplus.AuthenStart {
	return &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP,
		Service: tacplus.ServiceLogin, User: user, Port: "tty0", RemAddr: "127.0.0.1", Data: password}
}

// asciiStart is an ASCII START (section 5.4.2.1).
func asciiStart(action tacplus.AuthenAction, service tacplus.AuthenService, user string) *tacplus.AuthenStart {
	return &tacplus.AuthenStart{Action: action, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: service,
		User: user, Port: "tty0", RemAddr: "127.0.0.1"}
}

func cont(msg string) *tacplus.AuthenContinue { return &tacplus.AuthenContinue{UserMsg: msg} }

// ver is the version byte of a START of this type (section 5.4.1).
func ver(t tacplus.AuthenType) uint8 {
	m, _ := tacplus.StartMinorVersion(tacplus.ActionLogin, t)
	return tacplus.VersionByte(m)
}
