package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/localapi"
)

// prometheusBudget bounds TestPrometheusSeesFailover from start to end.
const prometheusBudget = 60 * time.Second

// TestPrometheusSeesFailover: a real Prometheus (the Debian package's binary) scrapes the real daemon,
// which serves logins from two test server processes (cmd/tacplus-testserver); the primary is killed
// with SIGKILL, and queries through Prometheus's HTTP API show the failover (failovers_total from the primary, the primary dead, logins still ok on the
// backup). The alert rules of contrib/prometheus are loaded too and must evaluate without error.
func TestPrometheusSeesFailover(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (Debian package prometheus; CI installs it): the end-to-end scrape test needs the real server")
	}
	deadline := time.Now().Add(prometheusBudget)
	serverBin := buildTestServer(t)
	primary := startServerProcess(t, serverBin)
	backup := startServerProcess(t, serverBin)
	d := startDaemon(t, serverEntry("primary", primary.Addr(), "timeout: 2s")+serverEntry("backup", backup.Addr(), "timeout: 2s"), "")

	prom := startPrometheus(t, promBin, d.Metrics)

	// Logins run all along, one at a time, as a device's users would.
	c := localapi.NewClient(d.Socket)
	defer c.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Authenticate(ctx, localapi.AuthenRequest{User: "bob", Type: localapi.TypePAP, Password: "bob-pw"}, nil)
			cancel()
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond) // pacing, not synchronisation: a user every 20 ms
		}
	}()
	var once sync.Once
	stopLogins := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopLogins()

	// Before the kill: Prometheus sees the agent up, logins ok on the primary, nothing dead.
	q := func(expr string) []promSample { return prom.query(t, expr) }
	waitUntil(t, deadline, "Prometheus scraping logins on the primary", func() bool {
		return len(q(fmt.Sprintf(`sum(tacagent_sessions_finished_total{kind="authen",outcome="ok",server=%q}) > 0`, primary.Addr()))) == 1
	})
	if s := q(`sum(tacagent_server_dead) == 0`); len(s) != 1 {
		t.Fatalf("before the kill a server is dead: %v", s)
	}
	if s := q(`tacagent_build_info`); len(s) != 1 || s[0].Metric["version"] == "" {
		t.Fatalf("tacagent_build_info through Prometheus: %v", s)
	}

	killed := time.Now()
	primary.kill(t)

	// After: the failover, the primary dead, logins going on on the backup.
	waitUntil(t, deadline, "Prometheus showing the failover from the primary", func() bool {
		return len(q(fmt.Sprintf(`sum(tacagent_failovers_total{from=%q}) > 0`, primary.Addr()))) == 1 &&
			len(q(fmt.Sprintf(`tacagent_server_dead{server=%q} == 1`, primary.Addr()))) == 1 &&
			len(q(fmt.Sprintf(`sum(increase(tacagent_sessions_finished_total{kind="authen",outcome="ok",server=%q}[1m])) > 0`, backup.Addr()))) == 1
	})
	t.Logf("Prometheus showed the failover %v after the kill", time.Since(killed).Round(time.Millisecond))
	if s := q(fmt.Sprintf(`tacagent_server_dead{server=%q} == 0`, backup.Addr())); len(s) != 1 {
		t.Errorf("the backup is not alive in Prometheus: %v", s)
	}
	// The alert rules run on real series without error, and every dashboard query is valid PromQL.
	prom.rulesHealthy(t)
	for _, e := range dashboardExprs(t) {
		prom.query(t, e)
	}

	stopLogins()
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Errorf("%d logins failed during the failover, first: %s", len(failures), failures[0])
	}
	if time.Now().After(deadline) {
		t.Errorf("the test took longer than %v", prometheusBudget)
	}
}

// dashboardExprs returns the Grafana dashboard's queries with its variables filled in as Grafana would.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../contrib/grafana/tacagent.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*")
	var out []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if tg.Expr != "" {
				out = append(out, fill.Replace(tg.Expr))
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("the dashboard has %d queries", len(out))
	}
	return out
}

// buildTestServer builds cmd/tacplus-testserver (without -race: it is a peer, not under test).
func buildTestServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tacplus-testserver")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tacagent/tacagent/cmd/tacplus-testserver").CombinedOutput()
	if err != nil {
		t.Fatalf("building tacplus-testserver: %v\n%s", err, out)
	}
	return bin
}

// serverProcess is a running tacplus-testserver.
type serverProcess struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *serverProcess) Addr() string { return s.addr }

// kill sends SIGKILL and waits for the process to be gone.
func (s *serverProcess) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

// startServerProcess runs tacplus-testserver on a loopback port with the e2e users, and waits for its
// address (its readiness signal: the first line on stdout).
func startServerProcess(t *testing.T, bin string) *serverProcess {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(cfg, []byte("users:\n  bob: {password: bob-pw}\nsingle_connect: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfg, "-single-connect")
	cmd.Env = append(os.Environ(), "TACPLUS_TESTSERVER_KEY="+e2eKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &serverProcess{cmd: cmd, done: make(chan struct{})}
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		first <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	})
	select {
	case s.addr = <-first:
	case <-time.After(15 * time.Second):
		t.Fatalf("tacplus-testserver printed no address within 15 s: %s", stderr.String())
	}
	if _, _, err := net.SplitHostPort(s.addr); err != nil {
		t.Fatalf("tacplus-testserver's first line %q is not an address: %s", s.addr, stderr.String())
	}
	return s
}

// waitUntil polls cond every 200 ms (each check is a Prometheus query) until it holds or the deadline passes.
func waitUntil(t *testing.T, deadline time.Time, what string, cond func() bool) {
	t.Helper()
	testkit.EventuallyEvery(t, time.Until(deadline), 200*time.Millisecond, what, cond)
}

type promServer struct {
	addr string
	cmd  *exec.Cmd
	log  *syncBuffer
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// startPrometheus runs prometheus with a 1 s scrape of target and the project's alert rules, and waits
// until it is ready.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("../../contrib/prometheus/tacagent.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: tacagent
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &promServer{addr: freePort(t), log: &syncBuffer{}}
	p.cmd = exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.log.String())
		}
	})
	eventually(t, 20*time.Second, "prometheus ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited: %s", p.log.String())
		default:
		}
		return testkit.HTTPOK("http://" + p.addr + "/-/ready")
	})
	return p
}

// query runs an instant query through the HTTP API.
func (p *promServer) query(t *testing.T, expr string) []promSample {
	t.Helper()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(expr), &body)
	if body.Status != "success" {
		t.Fatalf("query %s: %s %s", expr, body.Status, body.Error)
	}
	return body.Data.Result
}

// rulesHealthy checks that every rule of the loaded files has been evaluated without error.
func (p *promServer) rulesHealthy(t *testing.T) {
	t.Helper()
	var body struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	eventually(t, 10*time.Second, "every alert rule evaluated", func() bool {
		p.get(t, "/api/v1/rules", &body)
		n := 0
		for _, g := range body.Data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					if r.Health == "err" {
						t.Fatalf("rule %s: %s", r.Name, r.LastError)
					}
					return false
				}
				n++
			}
		}
		return n >= 6
	})
}

func (p *promServer) get(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, strings.TrimSpace(string(b)))
	}
}
