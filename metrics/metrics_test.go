package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNames: every collector is registered under the tacagent_ prefix with the names docs/operations.md
// lists, and a second agent on the same registry is refused rather than sharing collectors silently.
func TestNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Server("127.0.0.1:49")
	s.SessionStarted("authen")
	s.SessionFinished("authen", "ok", 0.001)
	s.Closed("eof")
	s.BadPacket("bad_secret")
	s.Restarts.Inc()
	s.ConnectionLost.Inc()
	m.Failovers.WithLabelValues(s.Addr, "authen").Inc()
	m.DeadLetters.Inc()
	m.SupervisorEvents.WithLabelValues("restart").Inc()
	m.ConfigReloads.WithLabelValues("ok").Inc()
	m.APIRequests.WithLabelValues("authenticate", "ok").Inc()
	m.APIRejected.WithLabelValues("peer").Inc()
	m.PolicyDecisions.WithLabelValues("success").Inc()
	m.PolicyHandlerRuns.WithLabelValues("tacacs", "success").Inc()
	for _, want := range []string{
		"sessions_started_total", "sessions_finished_total", "session_duration_seconds", "sessions_in_flight",
		"sessions_queued", "connection_opens_total", "connection_closes_total", "connection_failures_total",
		"connection_timeouts_total", "connection_restarts_total", "connection_state", "single_connect", "connections_open",
		"packets_sent_total", "packets_received_total", "bytes_sent_total", "bytes_received_total",
		"bad_packets_total", "connection_lost_broadcasts_total", "failovers_total", "server_dead",
		"dead_letters_total", "supervisor_events_total", "actor_panics_total", "spool_depth",
		"spool_dropped_total", "spool_replayed_total", "config_reloads_total", "api_requests_total",
		"api_rejected_total", "auth_rate_limited_total", "policy_decisions_total", "policy_handler_runs_total",
	} {
		if n, err := testutil.GatherAndCount(reg, "tacagent_"+want); err != nil || n == 0 {
			t.Errorf("tacagent_%s: %d series, %v", want, n, err)
		}
	}
	if got := testutil.ToFloat64(m.BadPackets.WithLabelValues(s.Addr, "bad_secret")); got != 1 {
		t.Errorf("bad_packets_total = %v", got)
	}
	if _, err := New(reg); err == nil {
		t.Errorf("a second New on the same registry succeeded")
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "tacagent_") {
			t.Errorf("%s lacks the prefix", mf.GetName())
		}
	}
}

// TestNopIsPrivate: Nop agents do not collide.
func TestNopIsPrivate(t *testing.T) {
	a, b := Nop(), Nop()
	a.DeadLetters.Inc()
	if testutil.ToFloat64(b.DeadLetters) != 0 {
		t.Errorf("Nop collectors are shared")
	}
}
