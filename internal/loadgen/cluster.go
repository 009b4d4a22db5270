package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// Cluster is a set of embedded TACACS+ test servers that a run can kill and restart, and that count the
// connections they accept.
type Cluster interface {
	Addrs() []string
	// Kill closes server i as a crash looks to clients: the listener closes (connects are refused) and
	// every open connection is cut.
	Kill(i int) error
	// Restart starts server i again on the same address.
	Restart(i int) error
	// Accepts is the number of connections every server accepted since the cluster started.
	Accepts() (int64, error)
	// Where says where the servers run, for the report.
	Where() string
	Close() error
}

// MaxServers bounds a cluster's size.
const MaxServers = 16

// ClusterConfig describes the embedded servers: Servers of them (default 2, at most MaxServers), each
// knowing one user.
type ClusterConfig struct {
	Servers  int
	Key      []byte
	User     string
	Password string
}

func (c ClusterConfig) servers() int {
	if c.Servers > 0 {
		return c.Servers
	}
	return 2
}

// InProcess is a Cluster in this process: its CPU time counts as this process's.
type InProcess struct {
	cfg    ClusterConfig
	mu     sync.Mutex
	srv    []*tacplustest.Server // nil while killed
	addrs  []string
	killed int64 // accepts of the instances that were killed
}

// StartInProcess starts the servers in this process.
func StartInProcess(cfg ClusterConfig) (*InProcess, error) {
	if cfg.Servers > MaxServers {
		return nil, fmt.Errorf("%d servers: at most %d", cfg.Servers, MaxServers)
	}
	c := &InProcess{cfg: cfg}
	for range cfg.servers() {
		s, err := c.start("")
		if err != nil {
			c.Close()
			return nil, err
		}
		c.srv = append(c.srv, s)
		c.addrs = append(c.addrs, s.Addr())
	}
	return c, nil
}

// start serves the user with single-connect agreed, and keeps connections open after a session for clients
// that did not ask for single-connect (tacquito's client), as tacquito's server does.
func (c *InProcess) start(addr string) (*tacplustest.Server, error) {
	return tacplustest.Start(tacplustest.Config{Addr: addr, Key: c.cfg.Key, SingleConnect: true, KeepOpen: true,
		Users: map[string]tacplustest.User{c.cfg.User: {Password: c.cfg.Password}}})
}

func (c *InProcess) Addrs() []string { return append([]string(nil), c.addrs...) }

func (c *InProcess) Where() string { return "in this process" }

func (c *InProcess) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.srv) || c.srv[i] == nil {
		return fmt.Errorf("server %d is not running", i)
	}
	s := c.srv[i]
	c.srv[i] = nil
	err := s.Close()
	c.killed += s.Stats().Connections
	return err
}

func (c *InProcess) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.srv) || c.srv[i] != nil {
		return fmt.Errorf("server %d is running", i)
	}
	s, err := c.start(c.addrs[i])
	if err != nil {
		return err
	}
	c.srv[i] = s
	return nil
}

func (c *InProcess) Accepts() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.killed
	for _, s := range c.srv {
		if s != nil {
			n += s.Stats().Connections
		}
	}
	return n, nil
}

func (c *InProcess) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for i, s := range c.srv {
		if s != nil {
			errs = append(errs, s.Close())
			c.srv[i] = nil
		}
	}
	return errors.Join(errs...)
}

// childEnv tells a re-executed binary to serve as the cluster's child process (ServeChildIfAsked).
const childEnv = "TACAGENT_BENCH_CLUSTER_CHILD"

// childWait bounds how long the parent waits for the child's answers and its exit.
const childWait = 10 * time.Second

// childRequest is one line the parent writes to the child's stdin; the first one is the configuration.
type childRequest struct {
	Op string `json:"op"` // "start", "kill", "restart", "accepts"
	I  int    `json:"i,omitempty"`
	// start only; the key and password travel through the pipe, never in argv or the environment.
	Servers  int    `json:"servers,omitempty"`
	Key      []byte `json:"key,omitempty"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

// childReply is the child's answer line.
type childReply struct {
	Addrs   []string `json:"addrs,omitempty"`
	Accepts int64    `json:"accepts"`
	Err     string   `json:"error,omitempty"`
}

// Child is a Cluster in a child process (this binary re-executed), so that the servers' CPU time is not
// counted as the client's. The child exits when its stdin closes, so it cannot outlive this process.
type Child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	stderr lockedBuffer
	addrs  []string
	pid    int
	mu     sync.Mutex
	done   chan error // the child's exit
}

// StartChild re-executes this binary as the cluster's child process. The binary must call
// ServeChildIfAsked early (tacagent does in an init function; tests in TestMain).
func StartChild(cfg ClusterConfig) (*Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	c := &Child{cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = &c.stderr // exec copies into it from a goroutine of its own
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the servers' process: %w", err)
	}
	c.pid = cmd.Process.Pid
	c.out = bufio.NewScanner(stdout)
	go func() { c.done <- cmd.Wait() }()
	rep, err := c.call(childRequest{Op: "start", Servers: cfg.servers(), Key: cfg.Key, User: cfg.User, Password: cfg.Password})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.addrs = rep.Addrs
	return c, nil
}

// call writes one request and reads its answer, bounded by childWait.
func (c *Child) call(req childRequest) (childReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(req)
	type result struct {
		rep childReply
		err error
	}
	ch := make(chan result, 1)
	go func() {
		if _, err := c.stdin.Write(append(b, '\n')); err != nil {
			ch <- result{err: err}
			return
		}
		if !c.out.Scan() {
			ch <- result{err: fmt.Errorf("the servers' process ended: %v %s", c.out.Err(), c.stderr.String())}
			return
		}
		var rep childReply
		if err := json.Unmarshal(c.out.Bytes(), &rep); err != nil {
			ch <- result{err: fmt.Errorf("the servers' process answered %q: %w", c.out.Text(), err)}
			return
		}
		ch <- result{rep: rep}
	}()
	t := time.NewTimer(childWait)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err == nil && r.rep.Err != "" {
			r.err = errors.New(r.rep.Err)
		}
		return r.rep, r.err
	case <-t.C:
		_ = c.cmd.Process.Kill() // unblocks the goroutine above
		return childReply{}, fmt.Errorf("the servers' process did not answer %s within %s", req.Op, childWait)
	}
}

func (c *Child) Addrs() []string { return append([]string(nil), c.addrs...) }

func (c *Child) Where() string { return fmt.Sprintf("in a child process (pid %d)", c.pid) }

func (c *Child) Kill(i int) error {
	_, err := c.call(childRequest{Op: "kill", I: i})
	return err
}

func (c *Child) Restart(i int) error {
	_, err := c.call(childRequest{Op: "restart", I: i})
	return err
}

func (c *Child) Accepts() (int64, error) {
	rep, err := c.call(childRequest{Op: "accepts"})
	return rep.Accepts, err
}

// Close ends the child: its stdin closes, it closes its servers and exits; past childWait it is killed.
func (c *Child) Close() error {
	_ = c.stdin.Close()
	t := time.NewTimer(childWait)
	defer t.Stop()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-t.C:
		_ = c.cmd.Process.Kill()
		return <-c.done
	}
}

// ServeChildIfAsked serves as a Child cluster and exits when this process was started as one; otherwise
// it returns at once. Call it before anything else in main (or TestMain).
func ServeChildIfAsked() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	// Ctrl-C reaches the whole process group: the parent stops its run and still asks the servers for
	// their counts, then closes the pipe, which is when the child ends.
	signal.Ignore(os.Interrupt)
	if err := serveChild(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tacagent bench servers:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveChild runs the child's side of the protocol until in ends.
func serveChild(in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(out)
	var c *InProcess
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for sc.Scan() {
		var req childRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("bad request: %w", err)
		}
		var rep childReply
		var err error
		switch {
		case req.Op == "start" && c == nil && (req.Servers < 0 || req.Servers > MaxServers):
			err = fmt.Errorf("%d servers: at most %d", req.Servers, MaxServers)
		case req.Op == "start" && c == nil:
			c, err = StartInProcess(ClusterConfig{Servers: req.Servers, Key: req.Key, User: req.User, Password: req.Password})
			if err == nil {
				rep.Addrs = c.Addrs()
			}
		case c == nil:
			err = errors.New("not started")
		case req.Op == "kill":
			err = c.Kill(req.I)
		case req.Op == "restart":
			err = c.Restart(req.I)
		case req.Op == "accepts":
			rep.Accepts, err = c.Accepts()
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			rep.Err = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	return sc.Err()
}

// lockedBuffer collects the child's stderr for error messages (bounded), safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const stderrCap = 4 << 10

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := stderrCap - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.TrimSpace(l.b.Bytes()))
}
