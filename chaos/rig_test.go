package chaos

// The rig: two TACACS+ server processes (the project's test server as the primary, tacquito as the
// secondary), a Toxiproxy link in front of each, the daemon as a process, an agent of the Go API in this
// process, and the driver that loads both front ends and records what each caller saw.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus"
)

// The accounts and keys every server of the rig is configured with. The keys are test values.
const (
	chaosKey    = "chaos-shared-key-0123456789"
	wrongKey    = "chaos-wrong-key-9876543210-abc"
	user        = "alice"
	password    = "alice-pw"
	badPassword = "not-alice-pw"
)

// Timing of the agents under test and of the driver.
const (
	serverTimeout  = time.Second            // per reply, before a request fails over
	dialTimeout    = 500 * time.Millisecond // one TCP connect
	deadTime       = time.Second            // a failed server is skipped this long
	backoffInitial = 20 * time.Millisecond  // connection restarts back off from here ...
	backoffMax     = 500 * time.Millisecond // ... to here
	// reqDeadline is every request's context deadline: room for two servers' timeouts and dials.
	reqDeadline = 4 * time.Second
	// hungGrace: a request that has not returned by reqDeadline + hungGrace is counted hung.
	hungGrace = time.Second
	// primaryDelay holds back each of the primary's replies, so that sessions are always in flight on it.
	primaryDelay = 10 * time.Millisecond
	// cleanPhase is the load run after every scenario, once its faults are gone: nothing may fail in it.
	cleanPhase = 750 * time.Millisecond
	// waitLimit bounds every wait on a condition; pollEvery is how often the condition is checked.
	waitLimit = 15 * time.Second
	pollEvery = 10 * time.Millisecond
	// stopLimit bounds the exit of a process after SIGTERM (the daemon drains for up to 10 s).
	stopLimit = 20 * time.Second
	// maxOpsPerWorker bounds each worker's loop whatever the clock does.
	maxOpsPerWorker = 10_000_000
)

// What the driver asks for; each worker cycles through mix.
const (
	opPAP        = "pap"         // PAP login with the right password: PASS
	opPAPBad     = "pap_bad"     // PAP login with a wrong password: FAIL
	opASCII      = "ascii"       // ASCII login, GETUSER then GETPASS answered by the caller
	opAuthor     = "author"      // "show version": permitted
	opAuthorDeny = "author_deny" // "reload": denied
	opAcct       = "acct"        // an accounting record with a unique task_id
)

var mix = []string{opPAP, opAcct, opAuthor, opPAP, opAcct, opASCII, opAuthor, opPAPBad, opAcct, opPAP,
	opAuthorDeny, opAcct, opAuthor, opPAP, opAcct, opASCII, opAuthor, opAcct, opPAP, opAcct}

// expectedFailure is the class that is the right answer for an op, "" when success is.
func expectedFailure(kind string) string {
	switch kind {
	case opPAPBad:
		return "authentication_failed"
	case opAuthorDeny:
		return "denied"
	}
	return ""
}

// classify turns what a caller saw into the ledger's class.
func classify(kind, class string) string {
	want := expectedFailure(kind)
	switch {
	case class == want:
		return ClassOK
	case class == "", want == "" && (class == "authentication_failed" || class == "denied"):
		return ClassWrong // success where a FAIL was due, or a FAIL where success was
	}
	return class
}

// ---- server processes ----

type serverKind int

const (
	kindTestServer serverKind = iota // cmd/tacplus-testserver
	kindTacquito                     // chaos/cmd/tacquito-server
)

// serverMode is how a server (re)starts.
type serverMode struct {
	wrongKey     bool // a key that differs from the agents'
	refuseSingle bool // refuse single-connect (test server only)
	misroute     bool // answer every reply under a wrong session_id (test server only)
}

type server struct {
	t        *testing.T
	name     string
	kind     serverKind
	dir      string
	listen   string // fixed at the first start, so that a restarted server is found at the same address
	acctLog  string
	logPath  string
	config   string
	misroute string // the test server's configuration with misrouting switched on
	keyFile  string
	wrongKey string
	delay    time.Duration
	link     *Link // nil when the agents connect directly

	mu     sync.Mutex
	proc   *Proc
	mode   serverMode
	starts int
	kills  int
}

// addr is where the agents connect: the link's address, or the server itself.
func (s *server) addr() string {
	if s.link != nil {
		return s.link.Addr()
	}
	return s.listen
}

func (s *server) writeFiles() error {
	s.acctLog = filepath.Join(s.dir, s.name+"-acct.jsonl")
	s.logPath = filepath.Join(s.dir, s.name+".log")
	s.keyFile = filepath.Join(s.dir, s.name+".key")
	s.wrongKey = filepath.Join(s.dir, s.name+".wrongkey")
	if err := os.WriteFile(s.keyFile, []byte(chaosKey+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(s.wrongKey, []byte(wrongKey+"\n"), 0o600); err != nil {
		return err
	}
	switch s.kind {
	case kindTestServer:
		s.config = filepath.Join(s.dir, s.name+".yaml")
		s.misroute = filepath.Join(s.dir, s.name+"-misroute.yaml")
		cfg := fmt.Sprintf(`users:
  %s: {password: %s, delay: %s}
author_rules:
  - {user: %s, command: "show( .*)?", permit: true, args: [priv-lvl=15]}
  - {user: %s, command: "reload( .*)?", permit: false, server_msg: denied}
`, user, password, s.delay, user, user)
		if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
			return err
		}
		// Every reply under the session_id of another session live on the same connection (the test
		// server's cross-session misrouting fault, issue 12).
		return os.WriteFile(s.misroute, []byte(cfg+"faults:\n  cross_session: -1\n"), 0o600)
	default:
		s.config = filepath.Join(s.dir, s.name+"-users.json")
		raw, err := json.Marshal([]map[string]any{{"name": user, "password": password, "priv_lvl": 15,
			"permit": []string{"show"}, "deny": []string{"reload"}}})
		if err != nil {
			return err
		}
		return os.WriteFile(s.config, raw, 0o600)
	}
}

// startAttempts bounds the restarts tried when the server's port was taken meanwhile.
const startAttempts = 5

// start starts the server process in mode, on its fixed address after the first start.
func (s *server) start(mode serverMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("%s is already running", s.name)
	}
	key := s.keyFile
	if mode.wrongKey {
		key = s.wrongKey
	}
	var lastErr error
	for range startAttempts {
		listen := s.listen
		if listen == "" {
			var err error
			if listen, err = pickAddr(); err != nil {
				return err
			}
		}
		var args []string
		var path string
		switch s.kind {
		case kindTestServer:
			path = bins.testserver
			cfg := s.config
			if mode.misroute {
				cfg = s.misroute
			}
			args = []string{"-listen", listen, "-config", cfg, "-key-file", key, "-acct-log", s.acctLog,
				"-idle-timeout", "-1s", "-single-connect=" + strconv.FormatBool(!mode.refuseSingle)}
		default:
			path = bins.tacquito
			args = []string{"-listen", listen, "-users", s.config, "-key-file", key, "-acct-log", s.acctLog}
		}
		// The servers are the instruments: their accounting logs stamp when a record arrived (the
		// give-up check), and their latency is part of every figure. On a loaded machine they run at a
		// higher priority than the agents under test (nice -10, as root: CI; elsewhere nice(1) warns in
		// the server's log and runs it unchanged), so that a stamp is late by the server's own
		// scheduling as little as possible.
		args = append([]string{"-n", "-10", path}, args...)
		p, line, err := StartProc(ProcConfig{Path: "nice", Args: args, LogPath: s.logPath, ReadyLine: true})
		if err != nil {
			lastErr = err
			continue // the port was taken (by an ephemeral port of another socket): try again
		}
		if line != listen {
			p.Kill()
			return fmt.Errorf("%s: readiness line %q, want %q", s.name, line, listen)
		}
		s.listen, s.proc, s.mode = listen, p, mode
		s.starts++
		return nil
	}
	return fmt.Errorf("%s: %w (log %s)", s.name, lastErr, s.logPath)
}

// kill SIGKILLs the server (its group) and waits until it is gone.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Kill()
	s.proc = nil
	s.kills++
}

// stop ends the server with SIGTERM; it must exit 0.
func (s *server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	code, err := s.proc.Stop(stopLimit)
	s.proc = nil
	if err == nil && code != 0 {
		err = fmt.Errorf("%s exited %d after SIGTERM (log %s)", s.name, code, s.logPath)
	}
	return err
}

func (s *server) running() (bool, serverMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil, s.mode
}

func (s *server) counts() (starts, kills int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts, s.kills
}

// records returns the task_id of every record in the server's accounting log, one entry per copy.
func (s *server) records() ([]string, error) {
	f, err := os.Open(s.acctLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		var rec struct {
			TaskID string `json:"task_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", s.acctLog, n, err)
		}
		ids = append(ids, rec.TaskID)
	}
	return ids, sc.Err()
}

// pickAddr returns a free loopback address whose port lies below the kernel's ephemeral range, so that no
// outgoing connection can take it while a killed server is down.
func pickAddr() (string, error) {
	low := 32768
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(raw)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	const first = 10000
	if low <= first+100 {
		return freeAddr()
	}
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(first+rand.IntN(low-first)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr, nil
		}
	}
	return freeAddr()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ---- the daemon ----

type daemonProc struct {
	r       *rig
	proc    *Proc
	dir     string
	cfgPath string
	socket  string
	metrics string
	logPath string
	timeout time.Duration // the servers' timeout in the file (reloads toggle it)
	// spool is the accounting spool's file; "" turns the spool off. The scenarios that compare the
	// agents' metrics with what their callers saw run without it: a spool delivers records later, in
	// sessions no caller made (TestSpoolOutageAndAgentKills covers it).
	spool  string
	starts int
	// baseline is the daemon's go_goroutines once warm.
	baseline float64
	// since is the ledger when this daemon process started: its metrics count from there.
	since Counts
}

func (d *daemonProc) writeConfig(valid bool) error {
	if !valid {
		return os.WriteFile(d.cfgPath, []byte("servers: [\n"), 0o600)
	}
	var b strings.Builder
	b.WriteString("servers:\n")
	for _, s := range d.r.agentServers() {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    key_file: %s\n    timeout: %s\n    connect_timeout: %s\n    idle_timeout: never\n",
			s.name, s.addr(), s.keyFile, d.timeout, dialTimeout)
	}
	fmt.Fprintf(&b, "dead_time: %s\nbackoff:\n  initial: %s\n  max: %s\n", deadTime, backoffInitial, backoffMax)
	b.WriteString("authentication:\n  failure_limit:\n    max: 0\n")
	fmt.Fprintf(&b, "metrics:\n  address: %s\napi:\n  socket: %s\n  mode: \"0600\"\nlog:\n  level: %s\n", d.metrics, d.socket, agentLogLevel())
	if d.spool == "" {
		b.WriteString("accounting:\n  spool:\n    enable: false\n")
	} else {
		fmt.Fprintf(&b, "accounting:\n  spool:\n    path: %s\n    retry_initial: %s\n    retry_max: %s\n", d.spool, spoolRetryInitial, spoolRetryMax)
	}
	tmp := d.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, d.cfgPath) // a reload never reads half a file
}

// start runs `tacagent run` and waits until its socket and /healthz answer.
func (d *daemonProc) start() error {
	if err := d.writeConfig(true); err != nil {
		return err
	}
	p, _, err := StartProc(ProcConfig{Path: bins.tacagent, Args: []string{"run", "--config", d.cfgPath}, LogPath: d.logPath})
	if err != nil {
		return err
	}
	d.proc = p
	d.starts++
	d.since = d.r.ledger.Counts()
	return poll(waitLimit, func() (bool, string) {
		select {
		case <-p.Done():
			return false, "the daemon exited: " + tail(d.logPath, 5)
		default:
		}
		if _, err := os.Stat(d.socket); err != nil {
			return false, "no socket yet"
		}
		return httpStatus("http://"+d.metrics+"/healthz") == http.StatusOK, "/healthz not 200"
	})
}

func (d *daemonProc) scrape() (Samples, error) {
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return ParseText(resp.Body)
}

// stop sends SIGTERM and waits for the exit: it must be 0, and the race detector must have said nothing.
func (d *daemonProc) stop() error {
	if d.proc == nil {
		return nil
	}
	code, err := d.proc.Stop(stopLimit)
	d.proc = nil
	if err != nil {
		return err
	}
	return d.exitErr(code)
}

func (d *daemonProc) exitErr(code int) error {
	log, _ := os.ReadFile(d.logPath)
	switch {
	case strings.Contains(string(log), "WARNING: DATA RACE"):
		return fmt.Errorf("the daemon reported a data race (log %s)", d.logPath)
	case strings.Contains(string(log), "panic:"):
		return fmt.Errorf("the daemon panicked (log %s)", d.logPath)
	case code != 0:
		return fmt.Errorf("the daemon exited %d (log %s): %s", code, d.logPath, tail(d.logPath, 5))
	}
	return nil
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// tail returns the last n lines of a file, for failure messages (logs hold no keys or passwords).
func tail(path string, n int) string {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- front ends ----

// frontend is one way of calling the agent. Each call returns the address of the server that answered.
type frontend interface {
	name() string
	call(ctx context.Context, kind, taskID string, flags int) (server string, err error)
	classOf(err error) string
}

var acctFlags = []tacplus.AcctFlag{tacplus.AcctFlagStart, tacplus.AcctFlagWatchdog, tacplus.AcctFlagStop}
var acctFlagNames = []string{localapi.FlagStart, localapi.FlagWatchdog, localapi.FlagStop}

// goAPI calls an agent of the Go API in this process.
type goAPI struct{ a *agent.Agent }

func (goAPI) name() string { return "goapi" }

func (goAPI) classOf(err error) string { return tacplus.ClassName(err) }

func (g goAPI) call(ctx context.Context, kind, taskID string, flags int) (string, error) {
	switch kind {
	case opPAP, opPAPBad, opRecovery:
		pw := password
		if kind == opPAPBad {
			pw = badPassword
		}
		r, err := g.a.Authenticate(ctx, agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP, Password: []byte(pw)}, nil)
		if r != nil {
			return r.Server, err
		}
		return "", err
	case opASCII:
		r, err := g.a.Authenticate(ctx, agent.AuthenRequest{}, func(_ context.Context, p agent.Prompt) ([]byte, error) {
			switch p.Status {
			case tacplus.AuthenStatusGetUser:
				return []byte(user), nil
			case tacplus.AuthenStatusGetPass:
				return []byte(password), nil
			}
			return nil, fmt.Errorf("unexpected prompt %q", p.Message)
		})
		if r != nil {
			return r.Server, err
		}
		return "", err
	case opAuthor, opAuthorDeny:
		args := []string{"service=shell", "cmd=show", "cmd-arg=version"}
		if kind == opAuthorDeny {
			args = []string{"service=shell", "cmd=reload"}
		}
		r, err := g.a.Authorize(ctx, agent.AuthorRequest{User: user, Method: tacplus.MethodTACACSPlus, PrivLvl: 1,
			Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, Port: "tty1", Args: args})
		if r != nil {
			return r.Server, err
		}
		return "", err
	case opAcct:
		r, err := g.a.Account(ctx, agent.AcctRequest{Flags: acctFlags[flags%len(acctFlags)], User: user,
			Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin,
			Port: "tty1", Args: []string{tacplus.Arg("task_id", taskID), "service=shell"}})
		if r != nil {
			return r.Server, err
		}
		return "", err
	}
	return "", fmt.Errorf("unknown op %q", kind)
}

// localAPI calls the daemon through its unix socket.
type localAPI struct{ c *localapi.Client }

func (localAPI) name() string { return "localapi" }

func (localAPI) classOf(err error) string {
	if err == nil {
		return ""
	}
	var le *localapi.Error
	if errors.As(err, &le) {
		return le.Code
	}
	return tacplus.ClassName(err)
}

func (l localAPI) call(ctx context.Context, kind, taskID string, flags int) (string, error) {
	switch kind {
	case opPAP, opPAPBad, opRecovery:
		pw := password
		if kind == opPAPBad {
			pw = badPassword
		}
		r, err := l.c.Authenticate(ctx, localapi.AuthenRequest{User: user, Password: localapi.Secret(pw), Type: localapi.TypePAP}, nil)
		if r != nil {
			return r.Server, err
		}
		return "", err
	case opASCII:
		r, err := l.c.Authenticate(ctx, localapi.AuthenRequest{Type: localapi.TypeASCII}, func(_ context.Context, p localapi.Prompt) (string, error) {
			if p.Echo {
				return user, nil // GETUSER
			}
			return password, nil // GETPASS (no echo)
		})
		if r != nil {
			return r.Server, err
		}
		return "", err
	case opAuthor, opAuthorDeny:
		req := localapi.AuthorRequest{User: user, Service: "shell", Cmd: "show", Args: []string{"version"}, Port: "tty1"}
		if kind == opAuthorDeny {
			req.Cmd, req.Args = "reload", nil
		}
		r, err := l.c.Authorize(ctx, req)
		if r != nil {
			return r.Server, err
		}
		return "", err
	case opAcct:
		r, err := l.c.Account(ctx, localapi.AcctRequest{Flags: acctFlagNames[flags%len(acctFlagNames)], User: user,
			TaskID: taskID, Port: "tty1", AV: []string{"service=shell"}})
		if r != nil {
			return r.Server, err
		}
		return "", err
	}
	return "", fmt.Errorf("unknown op %q", kind)
}

// ---- the rig ----

type rigOptions struct {
	direct bool // the agents connect to the servers without proxies (a kill is then a refused connect)
	only   bool // the agents know the primary only (the secondary runs, unused)
	// giveUp is the share of requests whose caller gives up early: half of them with a short deadline,
	// half by cancelling, each after 0.5 to 25 ms (impatient).
	giveUp float64
}

// agentServers are the servers the agents are configured with, in order.
func (r *rig) agentServers() []*server {
	if r.opts.only {
		return []*server{r.primary}
	}
	return []*server{r.primary, r.secondary}
}

type rig struct {
	t      *testing.T
	name   string
	dir    string
	opts   rigOptions
	net    *Network
	leaks  goleak.Option
	ledger *Ledger

	primary, secondary *server

	agent    *agent.Agent
	agentReg *prometheus.Registry
	agentLog *os.File
	daemon   *daemonProc
	client   *localapi.Client
	fronts   []frontend

	names      map[string]string // an address the agents report -> server name
	allowed    map[Key]bool      // outcome classes a scenario allows; an empty Frontend means either
	seq        atomic.Uint64
	impatient  atomic.Int64 // requests made with a short deadline or a cancellation (rigOptions.giveUp)
	loadDur    time.Duration
	goroutines int              // this process's, Toxiproxy's aside, once warm
	gates      map[string]*gate // per front end: pauses its workers
	closed     bool
}

// gate pauses the workers of one front end (while its daemon restarts, say) without stopping the load.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// wait returns true once the gate is open, false when stop closes first.
func (g *gate) wait(stop <-chan struct{}) bool {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-stop:
		return false
	}
}

// newRig starts everything and warms it up: every op succeeds once through every front end.
func newRig(t *testing.T, opts rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, name: t.Name(), opts: opts, leaks: goleak.IgnoreCurrent(), ledger: NewLedger(),
		names: map[string]string{}, allowed: map[Key]bool{},
		gates: map[string]*gate{"goapi": newGate(), "localapi": newGate()}}
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		t.Fatal(err)
	}
	r.dir = dir
	t.Cleanup(r.teardown)
	r.net = NewNetwork()
	r.primary = &server{t: t, name: "primary", kind: kindTestServer, dir: dir, delay: primaryDelay}
	r.secondary = &server{t: t, name: "secondary", kind: kindTacquito, dir: dir}
	for _, s := range []*server{r.primary, r.secondary} {
		if err := s.writeFiles(); err != nil {
			t.Fatal(err)
		}
		if err := s.start(serverMode{}); err != nil {
			t.Fatal(err)
		}
		r.names[s.listen] = s.name
		if !opts.direct {
			l, err := r.net.Link(s.name, s.listen)
			if err != nil {
				t.Fatal(err)
			}
			s.link = l
			r.names[l.Addr()] = s.name
		}
	}

	r.startGoAPI()

	metricsAddr, err := pickAddr()
	if err != nil {
		t.Fatal(err)
	}
	r.daemon = &daemonProc{r: r, dir: dir, cfgPath: filepath.Join(dir, "tacagent.yaml"), socket: filepath.Join(dir, "tacagent.sock"),
		metrics: metricsAddr, logPath: filepath.Join(dir, "tacagent.log"), timeout: serverTimeout}
	if err := r.daemon.start(); err != nil {
		t.Fatal(err)
	}
	r.client = localapi.NewClient(r.daemon.socket)
	r.fronts = append(r.fronts, localAPI{r.client})

	r.warmUp()
	r.goroutines, _ = ownGoroutines()
	if err := poll(waitLimit, func() (bool, string) {
		s, err := r.daemon.scrape()
		if err != nil {
			return false, err.Error()
		}
		r.daemon.baseline = s.Sum("go_goroutines", nil)
		return r.daemon.baseline > 0, "no go_goroutines"
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// agentLogLevel is -chaos.loglevel, warn when it does not parse.
func agentLogLevel() zerolog.Level {
	l, err := zerolog.ParseLevel(*flagLogLevel)
	if err != nil || l == zerolog.NoLevel {
		return zerolog.WarnLevel
	}
	return l
}

// startGoAPI starts the Go API agent of this process, logging to goapi.log.
func (r *rig) startGoAPI() {
	r.t.Helper()
	t := r.t
	var err error
	r.agentLog, err = os.Create(filepath.Join(r.dir, "goapi.log"))
	if err != nil {
		t.Fatal(err)
	}
	r.agentReg = prometheus.NewRegistry()
	var servers []agent.Server
	for _, s := range r.agentServers() {
		servers = append(servers, agent.Server{Addr: s.addr(), Key: []byte(chaosKey), Timeout: serverTimeout,
			DialTimeout: dialTimeout, IdleTimeout: -1})
	}
	r.agent, err = agent.New(agent.Config{Servers: servers, DeadTime: deadTime, BackoffInitial: backoffInitial,
		BackoffMax: backoffMax}, agent.WithRegisterer(r.agentReg),
		agent.WithLogger(zerolog.New(r.agentLog).Level(agentLogLevel()).With().Timestamp().Logger()))
	if err != nil {
		t.Fatal(err)
	}
	r.fronts = append(r.fronts, goAPI{r.agent})
}

// warmUp runs every op once per front end until each succeeds on the primary (bounded): the rig works,
// and both agents hold a connection to it.
func (r *rig) warmUp() {
	r.t.Helper()
	for _, f := range r.fronts {
		for _, kind := range []string{opPAP, opPAPBad, opASCII, opAuthor, opAuthorDeny, opAcct} {
			var last Op
			err := poll(waitLimit, func() (bool, string) {
				last = r.do(f, kind)
				// A FAIL through the local API names no server.
				return last.Class == ClassOK && (last.Server == r.primary.name || last.Server == ""), fmt.Sprintf("%+v", last)
			})
			if err != nil {
				r.t.Fatalf("warm-up %s %s: %v", f.name(), kind, err)
			}
		}
	}
}

// allow declares outcome classes a scenario may produce for these ops (every op when none is named),
// through either front end.
func (r *rig) allow(classes []string, kinds ...string) { r.allowFront("", classes, kinds...) }

// allowFront is allow for one front end.
func (r *rig) allowFront(front string, classes []string, kinds ...string) {
	if len(kinds) == 0 {
		kinds = []string{opPAP, opPAPBad, opASCII, opAuthor, opAuthorDeny, opAcct}
	}
	for _, k := range kinds {
		for _, c := range classes {
			r.allowed[Key{front, k, c}] = true
		}
	}
}

// allowLostConversations allows what an ASCII login that already showed a prompt ends with when its
// server dies: it is never replayed (docs/architecture.md, retry safety). The Go API says ConnectionLost; the daemon's
// authentication stack counts it as "unavailable", whose code is unreachable (docs/policy.md).
func (r *rig) allowLostConversations() {
	r.allowFront("goapi", []string{"connection_lost"}, opASCII)
	r.allowFront("localapi", []string{"unreachable"}, opASCII)
}

func (r *rig) isAllowed(k Key) bool {
	return r.allowed[k] || r.allowed[Key{"", k.Kind, k.Class}]
}

// do runs one op and records it. It never blocks past reqDeadline + hungGrace.
func (r *rig) do(f frontend, kind string) Op {
	n := r.seq.Add(1)
	taskID := ""
	if kind == opAcct {
		taskID = fmt.Sprintf("%s-%s-%d", strings.ReplaceAll(r.name, "/", "."), f.name(), n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reqDeadline)
	defer cancel()
	gaveUp := func() time.Time { return time.Time{} }
	isImpatient, cancels := false, false
	if r.opts.giveUp > 0 && kind != opRecovery && rand.Float64() < r.opts.giveUp {
		isImpatient = true
		var stop func()
		ctx, stop, gaveUp, cancels = impatient(ctx)
		defer stop()
		r.impatient.Add(1)
	}
	type result struct {
		server string
		err    error
		gaveUp time.Time
		end    time.Time
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, err := f.call(ctx, kind, taskID, int(n))
		done <- result{s, err, gaveUp(), time.Now()}
	}()
	timer := time.NewTimer(reqDeadline + hungGrace)
	defer timer.Stop()
	op := Op{Frontend: f.name(), Kind: kind, Start: start, TaskID: taskID}
	select {
	case res := <-done:
		op.Latency = time.Since(start)
		op.Server = res.server
		if name, ok := r.names[res.server]; ok {
			op.Server = name
		}
		op.Class = classify(kind, f.classOf(res.err))
		op.GaveUp, op.Cancelled = res.gaveUp, cancels
		if isImpatient && res.gaveUp.IsZero() && res.err != nil && op.Class == "timeout" {
			// The local API client refuses a request whose deadline is about to pass ("not sent: its
			// deadline has passed") before the deadline itself: an impatient caller's deadline (≤ 25 ms,
			// no server timeout is that short), so it gave up when the call returned.
			op.GaveUp = res.end
		}
		// The caller's own deadline or cancellation, as it asked. Through the local API an authentication
		// whose deadline cut the servers short ends "unavailable" (code unreachable: no server decided in
		// time, docs/api.md), as a server timeout does.
		deadlineUnavailable := f.name() == "localapi" && !cancels && op.Class == "unreachable" &&
			(kind == opPAP || kind == opPAPBad || kind == opASCII)
		if !op.GaveUp.IsZero() && res.err != nil && (op.Class == "timeout" || op.Class == "aborted" || deadlineUnavailable) {
			op.Class = ClassGaveUp
		}
		if res.err != nil {
			op.Err = res.err.Error()
		}
	case <-timer.C:
		op.Latency, op.Class = time.Since(start), ClassHung
	}
	r.ledger.Record(op)
	return op
}

// impatient derives a caller that gives up early from ctx: half the time a deadline 0.5 to 25 ms away,
// half the time a cancellation that many ms later. when says when it gave up (zero while it has not):
// the deadline itself, or the moment just before cancel was called. stop releases the context. cancels
// says which kind it is.
func impatient(ctx context.Context) (c context.Context, stop func(), when func() time.Time, cancels bool) {
	after := 500*time.Microsecond + rand.N(24500*time.Microsecond)
	if rand.IntN(2) == 0 {
		c, cancel := context.WithTimeout(ctx, after)
		deadline, _ := c.Deadline()
		return c, cancel, func() time.Time {
			// The callee may see the deadline pass by the clock before the context's timer has set Err.
			if errors.Is(c.Err(), context.DeadlineExceeded) || !time.Now().Before(deadline) {
				return deadline
			}
			return time.Time{}
		}, false
	}
	c, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var at time.Time
	timer := time.AfterFunc(after, func() {
		mu.Lock()
		at = time.Now()
		mu.Unlock()
		cancel()
	})
	return c, func() { timer.Stop(); cancel() }, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return at
	}, true
}

// load drives every front end with opts workers each for d, while faults (if any) runs on the test's
// goroutine with a context that ends with the load. Workers finish their current op before load returns.
func (r *rig) load(d time.Duration, faults func(ctx context.Context)) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	defer func() {
		close(stop)
		wg.Wait()
		r.loadDur += time.Since(start)
	}()
	for _, f := range r.fronts {
		for w := range *flagWorkers {
			wg.Add(1)
			g := r.gates[f.name()]
			go func() {
				defer wg.Done()
				for i := 0; i < maxOpsPerWorker; i++ {
					if !g.wait(stop) {
						return
					}
					select {
					case <-stop:
						return
					default:
					}
					r.do(f, mix[(w*7+i)%len(mix)])
				}
			}()
		}
	}
	if faults != nil {
		faults(ctx)
	}
	<-ctx.Done()
}

// phase runs the load for d (bounded by ctx) without faults: the workload of a fault window.
func phase(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// poll checks cond every pollEvery until it holds or limit passes; the error says what was last seen.
func poll(limit time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still false after %s: %s", limit, why)
		}
		<-tick.C
	}
}

// teardown stops everything the rig started; it runs at cleanup even when the test failed.
func (r *rig) teardown() {
	if r.closed {
		return
	}
	r.closed = true
	if r.daemon != nil {
		if err := r.daemon.stop(); err != nil {
			r.t.Errorf("daemon: %v", err)
		}
	}
	if r.client != nil {
		r.client.Close()
	}
	if r.agent != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopLimit)
		n, err := r.agent.Close(ctx)
		cancel()
		if err != nil || n != 0 {
			r.t.Errorf("Go API agent Close: %d abandoned, %v", n, err)
		}
	}
	if r.agentLog != nil {
		r.agentLog.Close()
	}
	for _, s := range []*server{r.primary, r.secondary} {
		if s != nil {
			if err := s.stop(); err != nil {
				r.t.Errorf("%v", err)
			}
		}
	}
	r.net.Close()
	if err := goleak.Find(append([]goleak.Option{r.leaks}, toxiproxyLeaks...)...); err != nil {
		r.t.Errorf("goroutines not back to the baseline: %v", err)
	}
	if r.t.Failed() || *flagKeep {
		r.t.Logf("scenario directory kept: %s", r.dir)
	} else {
		os.RemoveAll(r.dir)
	}
}
