package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"
)

// recorder registers collectors on a real registry and remembers every metric name they describe.
type recorder struct {
	reg   *prometheus.Registry
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return r.reg.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// exprs returns every PromQL expression of the Grafana dashboard and of the alert rules.
func exprs(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var walk func(file string, v any)
	walk = func(file string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "expr" {
					out[file] = append(out[file], s)
				}
				walk(file, e)
			}
		case []any:
			for _, e := range x {
				walk(file, e)
			}
		}
	}
	for _, f := range []string{"../contrib/grafana/tacagent.json", "../contrib/prometheus/tacagent.rules.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if strings.HasSuffix(f, ".json") {
			err = json.Unmarshal(b, &doc)
		} else {
			err = yaml.Unmarshal(b, &doc)
		}
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walk(f, doc)
		if len(out[f]) == 0 {
			t.Fatalf("%s: no expressions found", f)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\btacagent_[a-z0-9_]+`)

// TestContribMetricsExist: every tacagent_ metric that the dashboard (contrib/grafana/tacagent.json) and
// the alert rules (contrib/prometheus/tacagent.rules.yml) use is one the agent registers, and the
// registry the daemon serves passes the Prometheus linter.
func TestContribMetricsExist(t *testing.T) {
	r := &recorder{reg: prometheus.NewRegistry(), names: map[string]bool{}}
	m, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's registry has the Go and process collectors too (daemon.New).
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	used := map[string]bool{}
	for file, es := range exprs(t) {
		for _, e := range es {
			for _, n := range metricName.FindAllString(e, -1) {
				used[n] = true
				base := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suffix); ok && r.names[b] {
						base = b
					}
				}
				if !r.names[base] {
					t.Errorf("%s uses %s, which the agent does not register (expression %q)", file, n, e)
				}
			}
		}
	}
	for _, want := range []string{"tacagent_server_dead", "tacagent_sessions_finished_total", "tacagent_session_duration_seconds_bucket",
		"tacagent_failovers_total", "tacagent_connection_opens_total", "tacagent_spool_depth",
		"tacagent_tls_certificate_expiry_timestamp_seconds", "tacagent_bad_packets_total"} {
		if !used[want] {
			t.Errorf("neither the dashboard nor the rules use %s", want)
		}
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d metrics referenced: %s", len(names), strings.Join(names, " "))

	// Give every vector a series, so that the linter sees every family.
	s := m.Server("192.0.2.1:49")
	s.SessionStarted("authen")
	s.SessionFinished("authen", "ok", 0.002)
	s.Queued.Set(0)
	s.Opens.Inc()
	s.Failures.Inc()
	s.Timeouts.Inc()
	s.Restarts.Inc()
	s.State.Set(StateUp)
	s.SingleConnect.Set(1)
	s.PacketsSent.Inc()
	s.PacketsReceived.Inc()
	s.BytesSent.Add(12)
	s.BytesReceived.Add(12)
	s.ConnectionLost.Inc()
	s.Dead.Set(0)
	s.Closed("eof")
	s.BadPacket("bad_secret")
	s.TLSHandshake()
	s.TLSHandshakeFailed("expired")
	s.TLSExpiry("server", 1.9e9)
	s.TLSReload("ok")
	m.Failovers.WithLabelValues(s.Addr, "authen").Inc()
	m.HoldDowns.WithLabelValues(s.Addr).Inc()
	m.SupervisorEvents.WithLabelValues("restart").Inc()
	m.ConfigReloads.WithLabelValues("ok").Inc()
	m.APIRequests.WithLabelValues("authenticate", "ok").Inc()
	m.APIRejected.WithLabelValues("peer").Inc()
	m.PolicyDecisions.WithLabelValues("success").Inc()
	m.PolicyHandlerRuns.WithLabelValues("tacacs", "success").Inc()
	problems, err := testutil.GatherAndLint(r.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n, err := testutil.GatherAndCount(r.reg, "tacagent_build_info"); err != nil || n != 1 {
		t.Errorf("tacagent_build_info: %d series, %v", n, err)
	}
}
