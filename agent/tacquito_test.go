package agent_test

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	tq "github.com/facebookincubator/tacquito"
	"github.com/facebookincubator/tacquito/cmds/server/config"
	tqbcrypt "github.com/facebookincubator/tacquito/cmds/server/config/authenticators/bcrypt"
	"github.com/facebookincubator/tacquito/cmds/server/config/authorizers/stringy"
	"github.com/facebookincubator/tacquito/cmds/server/handlers"
	tqlog "github.com/facebookincubator/tacquito/cmds/server/log"
	"golang.org/x/crypto/bcrypt"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
)

// tacquitoIdle is tacquito's hard-coded read deadline between packets: it closes idle connections after it.
const tacquitoIdle = 15 * time.Second

// tacquitoServer is tacquito's server embedded in the test, on a loopback listener that counts and tracks
// its connections so that it can be stopped without waiting for tacquito's idle timeout.
type tacquitoServer struct {
	addr   string
	ln     *trackingListener
	cancel context.CancelFunc
	done   chan error
}

type trackingListener struct {
	*net.TCPListener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.accepted++
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

func (l *trackingListener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

type staticSecret struct {
	key []byte
	h   tq.Handler
}

func (s staticSecret) Get(context.Context, net.Addr) ([]byte, tq.Handler, error) {
	return s.key, s.h, nil
}

// startTacquito serves alice (password alice-pw; shell session authorization with priv-lvl=15, "show"
// commands permitted) and accepts accounting.
func startTacquito(t testing.TB, key []byte) *tacquitoServer {
	t.Helper()
	lg := tqlog.New(10, io.Discard)
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := tqbcrypt.New(lg, nil).New("alice", map[string]string{"hash": hex.EncodeToString(hash)})
	if err != nil {
		t.Fatal(err)
	}
	user := config.User{Name: "alice",
		Services: []config.Service{{Name: "shell", SetValues: []config.Value{{Name: "priv-lvl", Values: []string{"15"}}}}},
		Commands: []config.Command{{Name: "show", Match: []string{".*"}, Action: config.PERMIT}}}
	authz, err := stringy.New(lg).New(user)
	if err != nil {
		t.Fatal(err)
	}
	acct := tq.HandlerFunc(func(r tq.Response, q tq.Request) {
		r.Reply(tq.NewAcctReply(tq.SetAcctReplyStatus(tq.AcctReplyStatusSuccess)))
	})
	users := map[string]*config.AAA{"alice": config.NewAAA(config.SetAAAUser(user),
		config.SetAAAAuthenticator(authn), config.SetAAAAuthorizer(authz), config.SetAAAAccounter(acct))}
	ctx, cancel := context.WithCancel(context.Background())
	start := handlers.NewStart(lg).New(ctx, config.New().New(users), nil)
	srv := tq.NewServer(lg, staticSecret{key: key, h: start})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tacquitoServer{addr: ln.Addr().String(), ln: &trackingListener{TCPListener: ln.(*net.TCPListener)}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx, s.ln) }()
	t.Cleanup(s.stop)
	return s
}

// stop ends Serve: cancel, close the listener and every connection, then wait.
func (s *tacquitoServer) stop() {
	s.cancel()
	s.ln.Close()
	s.ln.closeConns()
	<-s.done
}

// TestTacquitoInterop: PAP, ASCII login, authorization and accounting against tacquito's own server, with
// many sessions multiplexed on its one connection (tacquito echoes the single-connect flag and answers
// interleaved sessions in order).
func TestTacquitoInterop(t *testing.T) {
	tqs := startTacquito(t, testKey)
	// tacquito answers the 100 parallel sessions below one after another on the shared connection: on a
	// loaded machine (-race, stress-ng) the last ones wait seconds. This test is about interop and
	// multiplexing, so the server timeout and the callers' deadlines are far beyond that.
	const slow = time.Minute
	srvCfg := server(tqs.addr)
	srvCfg.Timeout = slow
	h := newAgent(t, agent.Config{Servers: []agent.Server{srvCfg}})
	h.login(t, "alice", "alice-pw")
	_, err := h.Authenticate(ctxT(t), pap("alice", "wrong"), nil)
	wantClass(t, err, tacplus.ErrAuthenticationFailed)

	var prompts []tacplus.AuthenStatus
	if _, err := h.Authenticate(ctxT(t), agent.AuthenRequest{}, func(_ context.Context, p agent.Prompt) ([]byte, error) {
		prompts = append(prompts, p.Status)
		if p.Status == tacplus.AuthenStatusGetUser {
			return []byte("alice"), nil
		}
		if !p.NoEcho {
			t.Errorf("password prompt without NOECHO")
		}
		return []byte("alice-pw"), nil
	}); err != nil {
		t.Fatalf("ASCII login: %v (prompts %v)", err, prompts)
	}
	r, err := h.Authorize(ctxT(t), agent.AuthorRequest{User: "alice", Method: tacplus.MethodTACACSPlus,
		Service: tacplus.ServiceLogin, Args: []string{"service=shell", "cmd="}})
	if err != nil || r.Returned.Values("priv-lvl") == nil {
		t.Fatalf("shell authorization: %+v %v", r, err)
	}
	var errs firstErrs
	const n = 100
	ctxT := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), slow)
		t.Cleanup(cancel)
		return ctx
	}
	runParallel(n, func(i int) {
		switch i % 3 {
		case 0:
			if _, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil {
				errs.add("PAP %d: %v", i, err)
			}
		case 1:
			if _, err := h.Authorize(ctxT(t), agent.AuthorRequest{User: "alice", Method: tacplus.MethodTACACSPlus,
				Service: tacplus.ServiceLogin, Args: []string{"service=shell", "cmd=show", "cmd-arg=version"}}); err != nil {
				errs.add("author %d: %v", i, err)
			}
		case 2:
			if _, err := h.Account(ctxT(t), agent.AcctRequest{User: "alice", Flags: tacplus.AcctFlagStart,
				Method: tacplus.MethodTACACSPlus, Service: tacplus.ServiceLogin, Args: []string{"task_id=7", "service=shell"}}); err != nil {
				errs.add("acct %d: %v", i, err)
			}
		}
	})
	errs.check(t)
	if got := tqs.ln.Accepted(); got != 1 {
		t.Errorf("tacquito accepted %d connections, want 1 (single-connect)", got)
	}
}

// TestTacquitoKeyMismatch: tacquito answers ERROR "bad secret" under its own key and closes; the agent
// reports ErrBadSecret and does not reconnect for every login.
func TestTacquitoKeyMismatch(t *testing.T) {
	tqs := startTacquito(t, []byte("tacquito-key"))
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(tqs.addr)}, DeadTime: time.Minute})
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	wantClass(t, err, tacplus.ErrBadSecret)
	for range 10 {
		h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	}
	if got := tqs.ln.Accepted(); got > 1 {
		t.Errorf("%d connections for 11 logins", got)
	}
}

// TestTacquitoIdleClose: tacquito closes a connection after 15 s without traffic (hard-coded). The agent,
// told never to close first, sees the close as normal and the next login succeeds. It waits on the close
// itself, so it runs in parallel with the other tests.
func TestTacquitoIdleClose(t *testing.T) {
	t.Parallel()
	tqs := startTacquito(t, testKey)
	s := server(tqs.addr)
	s.IdleTimeout = -1
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
	h.login(t, "alice", "alice-pw")
	eventually(t, tacquitoIdle+5*time.Second, "tacquito closed the idle connection", func() bool {
		return h.metric(h.m().ConnCloses.WithLabelValues(tqs.addr, "eof")) == 1
	})
	h.login(t, "alice", "alice-pw")
	if v := h.metric(h.m().ConnRestarts.WithLabelValues(tqs.addr)); v != 0 {
		t.Errorf("%v restarts after an idle close", v)
	}
	if got := tqs.ln.Accepted(); got != 2 {
		t.Errorf("tacquito accepted %d connections, want 2", got)
	}
}
