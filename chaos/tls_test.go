package chaos

// TACACS+ over TLS 1.3 under chaos (issue 14): a TLS server SIGKILLed mid-session, and certificates
// rotated on both sides under load. The servers are the real tacplus-testserver processes with their TLS
// flags; the agent is the Go API with tlsconf dialers. Every loop is bounded by -chaos.duration.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tlsconf"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

const tlsServerName = "tacacs.chaos.test"

// tlsRig is a CA, TLS server processes and an agent dialing them over TLS.
type tlsRig struct {
	t     *testing.T
	dir   string
	ca    *testca.CA
	caPEM string
}

func newTLSRig(t *testing.T) *tlsRig {
	ca, err := testca.New("chaos TLS CA")
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsRig{t: t, dir: t.TempDir(), ca: ca}
	if r.caPEM, err = ca.WriteFile(r.dir, "ca"); err != nil {
		t.Fatal(err)
	}
	return r
}

// issueServer writes a server certificate for name (rename into place: a rotation).
func (r *tlsRig) issueServer(name string) (cert, key string) {
	r.t.Helper()
	is := r.ca.MustIssue(testca.Leaf{DNSNames: []string{tlsServerName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	cert, key, err := is.WriteFiles(r.dir, name)
	if err != nil {
		r.t.Fatal(err)
	}
	return cert, key
}

// startServer starts a TLS tacplus-testserver; users are delayed so that kills land mid-session.
func (r *tlsRig) startServer(name string, extra ...string) (*Proc, string) {
	r.t.Helper()
	cfg := filepath.Join(r.dir, name+".yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("users:\n  %s: {password: %s, delay: 20ms}\n", user, password)), 0o600); err != nil {
		r.t.Fatal(err)
	}
	keyFile := filepath.Join(r.dir, name+".sharedkey")
	if err := os.WriteFile(keyFile, []byte(chaosKey+"\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	cert, key := r.issueServer(name)
	listen, err := pickAddr()
	if err != nil {
		r.t.Fatal(err)
	}
	args := append([]string{"-listen", listen, "-config", cfg, "-key-file", keyFile, "-single-connect", "-idle-timeout", "-1s",
		"-tls-cert", cert, "-tls-key", key}, extra...)
	p, line, err := StartProc(ProcConfig{Path: bins.testserver, Args: args, LogPath: filepath.Join(r.dir, name+".log"), ReadyLine: true})
	if err != nil {
		r.t.Fatalf("starting %s: %v", name, err)
	}
	r.t.Cleanup(p.Kill)
	return p, line
}

func (r *tlsRig) dialer(s tlsconf.Settings) *tlsconf.Dialer {
	r.t.Helper()
	s.ServerName, s.CAFile = tlsServerName, r.caPEM
	d, err := tlsconf.New(s, "")
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func tlsAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	reg := prometheus.NewRegistry()
	cfg.BackoffInitial = 10 * time.Millisecond
	a, err := agent.New(cfg, agent.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return a
}

func tlsAgentServer(addr string, d *tlsconf.Dialer) agent.Server {
	return agent.Server{Addr: addr, Unencrypted: true, AllowUnencrypted: true, Dial: d.Dial,
		Timeout: 2 * time.Second, DialTimeout: time.Second}
}

func papRequest() agent.AuthenRequest {
	req := agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP}
	// Password is a string here and a []byte on branch wt/core: set it either way.
	if f := reflect.ValueOf(&req).Elem().FieldByName("Password"); f.Kind() == reflect.String {
		f.SetString(password)
	} else {
		f.SetBytes([]byte(password))
	}
	return req
}

// tlsLoad runs PAP logins from workers until stop, each with its own deadline, and tallies outcomes.
type tlsLoad struct {
	mu       sync.Mutex
	pass     map[string]int // by server
	errs     map[string]int // by error class
	late     int            // calls that returned after their deadline + grace
	wrong    int            // a FAIL for the right password, or a PASS with a status that is not PASS
	maxTook  time.Duration
	requests atomic.Int64
	wait     func()
}

const tlsCallDeadline = 5 * time.Second

func runTLSLoad(a *agent.Agent, workers int, stop <-chan struct{}) *tlsLoad {
	l := &tlsLoad{pass: map[string]int{}, errs: map[string]int{}}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), tlsCallDeadline)
				start := time.Now()
				r, err := a.Authenticate(ctx, papRequest(), nil)
				took := time.Since(start)
				cancel()
				l.requests.Add(1)
				l.mu.Lock()
				l.maxTook = max(l.maxTook, took)
				if took > tlsCallDeadline+time.Second {
					l.late++
				}
				switch {
				case err == nil && r.Status == tacplus.AuthenStatusPass:
					l.pass[r.Server]++
				case err == nil, errors.Is(err, tacplus.ErrAuthenticationFailed):
					l.wrong++
				default:
					l.errs[tacplus.ClassName(err)]++
				}
				l.mu.Unlock()
			}
		}()
	}
	l.wait = wg.Wait
	return l
}

// TestTLSServerKilledMidSession: the primary TLS server is SIGKILLed under load. Every call returns by its
// deadline, none is answered wrongly, and the logins after the kill go to the secondary over TLS.
func TestTLSServerKilledMidSession(t *testing.T) {
	r := newTLSRig(t)
	primary, paddr := r.startServer("primary")
	_, saddr := r.startServer("secondary")
	a := tlsAgent(t, agent.Config{Servers: []agent.Server{
		tlsAgentServer(paddr, r.dialer(tlsconf.Settings{})), tlsAgentServer(saddr, r.dialer(tlsconf.Settings{}))},
		DeadTime: time.Minute})
	stop := make(chan struct{})
	load := runTLSLoad(a, *flagWorkers, stop)
	third := *flagDuration / 3
	time.Sleep(third) // load phase before the kill: a fixed duration of load, not a wait for a condition
	before := load.requests.Load()
	primary.Kill()
	killedAt := time.Now()
	time.Sleep(*flagDuration - third)
	close(stop)
	load.wait()

	load.mu.Lock()
	defer load.mu.Unlock()
	t.Logf("requests %d (before kill %d), pass by server %v, errors %v, max latency %v",
		load.requests.Load(), before, load.pass, load.errs, load.maxTook)
	if load.wrong > 0 {
		t.Fatalf("%d logins answered wrongly (FAIL for the right password)", load.wrong)
	}
	if load.late > 0 {
		t.Fatalf("%d calls returned after their deadline + 1 s (max %v)", load.late, load.maxTook)
	}
	if load.pass[paddr] == 0 || load.pass[saddr] == 0 {
		t.Fatalf("passes by server %v: want both the primary (before the kill) and the secondary (after)", load.pass)
	}
	for class := range load.errs {
		switch class {
		case "connection_lost", "unreachable", "timeout":
		default:
			t.Errorf("unexpected error class %q after a server kill", class)
		}
	}
	// After the kill the primary is dead-timed: new logins do not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), tlsCallDeadline)
	defer cancel()
	start := time.Now()
	res, err := a.Authenticate(ctx, papRequest(), nil)
	if err != nil || res.Server != saddr {
		t.Fatalf("login after the kill: %v %v, want PASS from the secondary", res, err)
	}
	t.Logf("login %v after the kill took %v", time.Since(killedAt).Round(time.Millisecond), time.Since(start))
}

// TestTLSCertificateRotationUnderLoad: the server's certificate and the agent's client certificate are
// rotated (renamed into place) repeatedly under load, and connections are replaced all the while
// (max_connection_age short); no login fails, and each side picks up the new material.
func TestTLSCertificateRotationUnderLoad(t *testing.T) {
	r := newTLSRig(t)
	clientCA, err := testca.New("chaos client CA")
	if err != nil {
		t.Fatal(err)
	}
	clientCAFile, err := clientCA.WriteFile(r.dir, "client-ca")
	if err != nil {
		t.Fatal(err)
	}
	issueClient := func() (string, string) {
		c, k, err := clientCA.MustIssue(testca.Leaf{DNSNames: []string{"agent.chaos.test"}, Client: true}).WriteFiles(r.dir, "client")
		if err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	cert, key := issueClient()
	_, addr := r.startServer("rotating", "-tls-client-ca", clientCAFile)
	d := r.dialer(tlsconf.Settings{CertFile: cert, KeyFile: key})
	a := tlsAgent(t, agent.Config{Servers: []agent.Server{tlsAgentServer(addr, d)}, MaxConnectionAge: 200 * time.Millisecond})
	stop := make(chan struct{})
	load := runTLSLoad(a, *flagWorkers, stop)
	rotations := 0
	deadline := time.Now().Add(*flagDuration)
	for time.Now().Before(deadline) {
		time.Sleep(150 * time.Millisecond) // rotation cadence, not a wait for a condition
		r.issueServer("rotating")
		issueClient()
		rotations++
	}
	close(stop)
	load.wait()
	load.mu.Lock()
	defer load.mu.Unlock()
	m := a.Metrics().TLS
	handshakes := testutil.ToFloat64(m.Handshakes.WithLabelValues(addr))
	reloads := testutil.ToFloat64(m.Reloads.WithLabelValues(addr, "ok"))
	reloadErrs := testutil.ToFloat64(m.Reloads.WithLabelValues(addr, "error"))
	t.Logf("requests %d, pass %v, errors %v, rotations %d, handshakes %v, reloads ok %v / error %v, max latency %v",
		load.requests.Load(), load.pass, load.errs, rotations, handshakes, reloads, reloadErrs, load.maxTook)
	if len(load.errs) > 0 {
		for _, reason := range []string{tlsconf.ReasonRemoteAlert, tlsconf.ReasonClientRejected, tlsconf.ReasonBadCertificate, tlsconf.ReasonOther, tlsconf.ReasonClosed} {
			if n := testutil.ToFloat64(m.HandshakeFailures.WithLabelValues(addr, reason)); n > 0 {
				t.Logf("handshake failures %s: %v", reason, n)
			}
		}
	}
	if load.wrong > 0 || load.late > 0 || len(load.errs) > 0 {
		t.Fatalf("rotation under load: wrong %d, late %d, errors %v: want none", load.wrong, load.late, load.errs)
	}
	if handshakes < 2 || reloads < 1 {
		t.Fatalf("handshakes %v, reloads %v: the rotation was never exercised", handshakes, reloads)
	}
	if st, ok := d.State(); !ok || st.Version != "TLS 1.3" {
		t.Fatalf("state %+v", st)
	}
}
