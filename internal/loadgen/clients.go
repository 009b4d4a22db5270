package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	tq "github.com/facebookincubator/tacquito"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/daemon"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// Target is what the clients log in to and as.
type Target struct {
	Servers  []string // host:port, in failover order
	Key      []byte   // the shared secret (never logged)
	User     string
	Password []byte
	// Timeout bounds each login's wait for a server (the agent's per-server Timeout, tacquito's socket
	// deadline, the local API request's deadline). Default DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is Target.Timeout's default.
const DefaultTimeout = 5 * time.Second

func (t Target) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return DefaultTimeout
}

// agentConfig is an agent's configuration for t; perSession stops it from asking for single-connect, so
// that every session has a connection of its own (the pam_tacplus way).
func (t Target) agentConfig(perSession bool) agent.Config {
	var cfg agent.Config
	for _, a := range t.Servers {
		cfg.Servers = append(cfg.Servers, agent.Server{Addr: a, Key: t.Key, Timeout: t.timeout(), NoSingleConnect: perSession})
	}
	return cfg
}

// agentClient logs in through the Go API of one or several agents (caller i uses agent i mod n).
type agentClient struct {
	agents []*agent.Agent
	user   string
	pw     []byte
}

// NewAgentClient starts n agents (at least one) for t, each with its own connections. perSession: see
// Target.agentConfig.
func NewAgentClient(t Target, n int, perSession bool, log zerolog.Logger) (Client, error) {
	c := &agentClient{user: t.User, pw: t.Password}
	for range max(n, 1) {
		a, err := agent.New(t.agentConfig(perSession), agent.WithLogger(log), agent.WithRegisterer(prometheus.NewRegistry()))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.agents = append(c.agents, a)
	}
	return c, nil
}

func (c *agentClient) Caller(i int) (Login, error) {
	a := c.agents[i%len(c.agents)]
	req := agent.AuthenRequest{User: c.user, Type: tacplus.AuthenTypePAP, Password: c.pw}
	return func(ctx context.Context) error {
		_, err := a.Authenticate(ctx, req, nil)
		return err
	}, nil
}

func (c *agentClient) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, a := range c.agents {
		if _, err := a.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// localAPIClient logs in through a daemon's local API: one started in this process, or a running one.
type localAPIClient struct {
	c       *localapi.Client
	d       *daemon.Daemon // nil for a running daemon
	dir     string
	user    string
	pw      localapi.Secret
	timeout time.Duration
	sock    string
	pid     int // the running daemon's, found at warm-up; 0 when unknown or in this process
}

// NewLocalAPIClient starts a daemon in this process for t (its logs at log's level go to log's writer),
// serving its local API on a socket in a temporary directory.
func NewLocalAPIClient(t Target, callers int, log zerolog.Logger) (Client, error) {
	dir, err := os.MkdirTemp("", "tacagent-bench-")
	if err != nil {
		return nil, err
	}
	d, err := daemon.New(daemon.Settings{Agent: t.agentConfig(false), Groups: []string{"default"}}, log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sock := filepath.Join(dir, "tacagent.sock")
	// Every caller is this process's uid: a non-root run needs shares that hold all of them.
	share := max(2*callers, localapi.DefaultConnectionShare)
	if err := d.ServeAPI(sock, 0o600, localapi.Config{Log: log, ConnectionShare: share,
		ConversationShare: max(2*callers, localapi.DefaultConversationShare),
		MaxConversations:  max(2*callers, localapi.DefaultMaxConversations)}); err != nil {
		shutdown(d)
		os.RemoveAll(dir)
		return nil, err
	}
	// Each caller keeps its connection between logins, as a long-running client of the API does.
	return &localAPIClient{c: localapi.NewClient(sock, localapi.WithKeptConnections(callers)), d: d, dir: dir, user: t.User, pw: localapi.Secret(t.Password),
		timeout: t.timeout()}, nil
}

// NewSocketClient logs in through the local API of the daemon at sock, which the caller trusts to run as
// one of uids (root and the caller's own uid when empty). Each of the callers keeps its connection.
func NewSocketClient(sock string, uids []uint32, t Target, callers int) Client {
	opts := []localapi.ClientOption{localapi.WithKeptConnections(callers)}
	if len(uids) > 0 {
		opts = append(opts, localapi.WithDaemonUIDs(uids...))
	}
	return &localAPIClient{c: localapi.NewClient(sock, opts...), user: t.User, pw: localapi.Secret(t.Password), timeout: t.timeout(),
		sock: sock}
}

func (c *localAPIClient) Caller(i int) (Login, error) {
	// Each caller logs in from its own rem_addr, as logins from many hosts do: the agent's failure limit
	// admits at most a few attempts in flight per (user, rem_addr), and one key for all callers would
	// measure that limit, not the API.
	req := localapi.AuthenRequest{User: c.user, Password: c.pw, Type: localapi.TypePAP,
		RemAddr: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, c.timeout+time.Second)
		defer cancel()
		_, err := c.c.Authenticate(ctx, req, nil)
		var le *localapi.Error
		if err != nil && tacplus.ClassName(err) == KindUnknown && errors.As(err, &le) {
			return withKind("api_"+le.Code, err)
		}
		return err
	}, nil
}

func (c *localAPIClient) Close() error {
	c.c.Close()
	if c.d == nil {
		return nil
	}
	err := shutdown(c.d)
	os.RemoveAll(c.dir)
	return err
}

func shutdown(d *daemon.Daemon) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Shutdown(ctx)
}

// tacquitoClient logs in with tacquito's client library: one synchronous connection per caller, packets
// built as its users must build them. A caller whose connection failed dials again on its next login,
// trying the servers in order (as pam_tacplus does for each request).
type tacquitoClient struct {
	t       Target
	mu      sync.Mutex
	callers []*tacquitoCaller
}

// NewTacquitoClient returns the tacquito client baseline for t.
func NewTacquitoClient(t Target) Client { return &tacquitoClient{t: t} }

// Close closes every caller's connection; call it once the run's callers have returned.
func (c *tacquitoClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tc := range c.callers {
		_ = tc.drop(nil)
	}
	c.callers = nil
	return nil
}

type tacquitoCaller struct {
	t   Target
	nc  *net.TCPConn
	cl  *tq.Client
	sid uint32
}

func (c *tacquitoClient) Caller(int) (Login, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	tc := &tacquitoCaller{t: c.t, sid: binary.BigEndian.Uint32(b[:])}
	if err := tc.dial(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.callers = append(c.callers, tc)
	c.mu.Unlock()
	return tc.login, nil
}

// dial connects to the first server that accepts.
func (tc *tacquitoCaller) dial() error {
	var errs []error
	for _, a := range tc.t.Servers {
		d := net.Dialer{Timeout: tc.t.timeout()}
		conn, err := d.Dial("tcp", a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cl, err := tq.NewClient(tq.SetClientWithConn(conn.(*net.TCPConn), tc.t.Key))
		if err != nil {
			conn.Close()
			errs = append(errs, err)
			continue
		}
		tc.nc, tc.cl = conn.(*net.TCPConn), cl
		return nil
	}
	return withKind("unreachable", errors.Join(errs...))
}

// login is one PAP login; the connection is dropped after any error (its stream may be out of step).
func (tc *tacquitoCaller) login(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if tc.cl == nil {
		if err := tc.dial(); err != nil {
			return err
		}
	}
	tc.sid++
	h := tq.NewHeader(tq.SetHeaderVersion(tq.Version{MajorVersion: tq.MajorVersion, MinorVersion: tq.MinorVersionOne}),
		tq.SetHeaderType(tq.Authenticate), tq.SetHeaderSeqNo(1), tq.SetHeaderSessionID(tq.SessionID(tc.sid)))
	start := tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
		tq.SetAuthenStartType(tq.AuthenTypePAP), tq.SetAuthenStartService(tq.AuthenServiceLogin),
		tq.SetAuthenStartUser(tq.AuthenUser(tc.t.User)), tq.SetAuthenStartData(tq.AuthenData(tc.t.Password)))
	if err := tc.nc.SetDeadline(time.Now().Add(tc.t.timeout())); err != nil {
		return tc.drop(withKind(KindNetwork, err))
	}
	resp, err := tc.cl.Send(tq.NewPacket(tq.SetPacketHeader(h), tq.SetPacketBodyUnsafe(start)))
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return tc.drop(withKind("timeout", err))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.As(err, new(*net.OpError)):
			return tc.drop(withKind("connection_lost", err))
		}
		return tc.drop(withKind(KindDecode, err))
	}
	var r tq.AuthenReply
	if err := tq.Unmarshal(resp.Body, &r); err != nil {
		return tc.drop(withKind(KindDecode, err))
	}
	switch r.Status {
	case tq.AuthenStatusPass:
		return nil
	case tq.AuthenStatusFail:
		return withKind("authentication_failed", errors.New("FAIL"))
	case tq.AuthenStatusError:
		return withKind("server_error", errors.New("ERROR"))
	}
	return withKind("protocol", fmt.Errorf("unexpected status %v", r.Status))
}

func (tc *tacquitoCaller) drop(err error) error {
	if tc.nc != nil {
		tc.nc.Close()
	}
	tc.nc, tc.cl = nil, nil
	return err
}

// Warmup logs in once through every agent, so that their connections are open and negotiated before the
// clock starts.
func (c *agentClient) Warmup(ctx context.Context) (int, error) {
	var first error
	failed := 0
	for i := range c.agents {
		login, _ := c.Caller(i)
		if err := login(ctx); err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 1 {
		return len(c.agents), fmt.Errorf("%d of %d agents failed, the first: %w", failed, len(c.agents), first)
	}
	return len(c.agents), first
}

// Warmup logs in once, so that the daemon's agent has its connection open before the clock starts, and
// finds a running daemon's pid for OtherCPU.
func (c *localAPIClient) Warmup(ctx context.Context) (int, error) {
	login, _ := c.Caller(0)
	err := login(ctx)
	if c.d == nil {
		if pid, perr := peerPID(c.sock); perr == nil && pid != os.Getpid() {
			c.pid = pid
		}
	}
	return 1, err
}

// OtherCPU is the CPU time of a running daemon (another process) in seconds; ok is false when it runs in
// this process (its time is then in getrusage) or cannot be read.
func (c *localAPIClient) OtherCPU() (pid int, seconds float64, ok bool) {
	if c.pid == 0 {
		return 0, 0, false
	}
	s, err := processCPU(c.pid)
	return c.pid, s, err == nil
}
