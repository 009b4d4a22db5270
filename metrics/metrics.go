package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tacagent/tacagent/internal/buildinfo"
)

// Connection states reported by tacagent_connection_state.
const (
	StateDown       = 0
	StateConnecting = 1
	StateUp         = 2
)

// Metrics holds every collector. Create it once per agent with New.
type Metrics struct {
	SessionsStarted   *prometheus.CounterVec   // kind, server
	SessionsFinished  *prometheus.CounterVec   // kind, outcome, server
	SessionDuration   *prometheus.HistogramVec // kind
	SessionsInFlight  *prometheus.GaugeVec     // server
	SessionsQueued    *prometheus.GaugeVec     // server
	ConnOpens         *prometheus.CounterVec   // server
	ConnCloses        *prometheus.CounterVec   // server, reason
	ConnFailures      *prometheus.CounterVec   // server
	ConnTimeouts      *prometheus.CounterVec   // server
	ConnRestarts      *prometheus.CounterVec   // server
	ConnState         *prometheus.GaugeVec     // server
	SingleConnect     *prometheus.GaugeVec     // server
	ConnsOpen         *prometheus.GaugeVec     // server
	PacketsSent       *prometheus.CounterVec   // server
	PacketsReceived   *prometheus.CounterVec   // server
	BytesSent         *prometheus.CounterVec   // server
	BytesReceived     *prometheus.CounterVec   // server
	BadPackets        *prometheus.CounterVec   // server, reason
	ConnectionLost    *prometheus.CounterVec   // server
	Failovers         *prometheus.CounterVec   // from (server failed away from), kind
	ServerDead        *prometheus.GaugeVec     // server
	HoldDowns         *prometheus.CounterVec   // server
	DeadLetters       prometheus.Counter
	SupervisorEvents  *prometheus.CounterVec // directive
	ActorPanics       prometheus.Counter
	SpoolDepth        prometheus.Gauge
	SpoolDropped      prometheus.Counter
	SpoolReplayed     prometheus.Counter
	ConfigReloads     *prometheus.CounterVec // result
	APIRequests       *prometheus.CounterVec // endpoint, code
	APIRejected       *prometheus.CounterVec // reason
	AuthRateLimited   prometheus.Counter
	PolicyDecisions   *prometheus.CounterVec // result
	PolicyHandlerRuns *prometheus.CounterVec // handler, result
	TLS               *TLS                   // TACACS+ over TLS (tls.go)
	Spool             *Spool                 // the accounting spool (spool.go)
	NSS               *NSS                   // the NSS lookup cache (nss.go)
	Proxy             *Proxy                 // the loopback TACACS+ front end (proxy.go)
	// BuildInfo is tacagent_build_info, always 1, labelled with the running build (debug.ReadBuildInfo).
	BuildInfo prometheus.Gauge
}

// DurationBuckets spans 100 µs (a loopback round trip) to 30 s (the longest sane login conversation).
var DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// New creates every collector and registers it on reg. It returns an error when a name is already
// registered there (two agents sharing one registry).
func New(reg prometheus.Registerer) (*Metrics, error) {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tacagent", Name: name, Help: help}, labels)
	}
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tacagent", Name: name, Help: help}, labels)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tacagent", Name: name, Help: help})
	}
	m := &Metrics{
		SessionsStarted:  cv("sessions_started_total", "TACACS+ sessions started, by kind (authen, author, acct).", "kind", "server"),
		SessionsFinished: cv("sessions_finished_total", "TACACS+ sessions finished, by kind and outcome (ok or the error class).", "kind", "outcome", "server"),
		SessionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "tacagent", Name: "session_duration_seconds",
			Help: "Time from a session's start to its completion, by kind.", Buckets: DurationBuckets}, []string{"kind"}),
		SessionsInFlight:  gv("sessions_in_flight", "Sessions currently running on a server's connections.", "server"),
		SessionsQueued:    gv("sessions_queued", "Sessions waiting for a free slot under the per-connection limit.", "server"),
		ConnOpens:         cv("connection_opens_total", "TCP/TLS connections established.", "server"),
		ConnCloses:        cv("connection_closes_total", "Connections closed, by reason.", "server", "reason"),
		ConnFailures:      cv("connection_failures_total", "Connection attempts that failed.", "server"),
		ConnTimeouts:      cv("connection_timeouts_total", "Connection attempts that timed out.", "server"),
		ConnRestarts:      cv("connection_restarts_total", "Connection actor restarts by the supervisor.", "server"),
		ConnState:         gv("connection_state", "Connection state: 0 down, 1 connecting, 2 up.", "server"),
		ConnsOpen:         gv("connections_open", "Long-lived connections (connections_per_server) with an open socket.", "server"),
		SingleConnect:     gv("single_connect", "1 when the server agreed to single-connect mode on the current connection (RFC 8907 section 4.3).", "server"),
		PacketsSent:       cv("packets_sent_total", "Packets sent.", "server"),
		PacketsReceived:   cv("packets_received_total", "Packets received.", "server"),
		BytesSent:         cv("bytes_sent_total", "Bytes sent, headers included.", "server"),
		BytesReceived:     cv("bytes_received_total", "Bytes received, headers included.", "server"),
		BadPackets:        cv("bad_packets_total", "Packets rejected by the codec or a session, by reason.", "server", "reason"),
		ConnectionLost:    cv("connection_lost_broadcasts_total", "ConnectionLost notices sent to sessions of a failed connection.", "server"),
		Failovers:         cv("failovers_total", "Requests moved from a server to the next one.", "from", "kind"),
		ServerDead:        gv("server_dead", "1 while a server is dead-timed (skipped for new sessions).", "server"),
		HoldDowns:         cv("single_connect_hold_downs_total", "Multiplexing hold-downs started after a desynchronised connection (the server is used one connection per session until the hold-down ends).", "server"),
		DeadLetters:       c("dead_letters_total", "Actor messages that reached no live actor."),
		SupervisorEvents:  cv("supervisor_events_total", "Supervision decisions, by directive.", "directive"),
		ActorPanics:       c("actor_panics_total", "Panics recovered inside actors."),
		SpoolDepth:        prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tacagent", Name: "spool_depth", Help: "Accounting records waiting in the spool."}),
		SpoolDropped:      c("spool_dropped_total", "Accounting records dropped from the spool because it was full (the oldest first)."),
		SpoolReplayed:     c("spool_replayed_total", "Spooled accounting records delivered by a later attempt: after an outage, an ERROR or a restart."),
		ConfigReloads:     cv("config_reloads_total", "Configuration reloads, by result (ok, error).", "result"),
		APIRequests:       cv("api_requests_total", "Local API requests, by endpoint and result code.", "endpoint", "code"),
		APIRejected:       cv("api_rejected_total", "Local API requests rejected before handling, by reason.", "reason"),
		AuthRateLimited:   c("auth_rate_limited_total", "Authentications refused by the per-user failure rate limit."),
		PolicyDecisions:   cv("policy_decisions_total", "Authentication stack results.", "result"),
		PolicyHandlerRuns: cv("policy_handler_runs_total", "Authentication handler runs, by handler and result.", "handler", "result"),
		TLS:               newTLS(),
		Spool:             newSpool(),
		NSS:               newNSS(),
		Proxy:             NewProxy(),
		BuildInfo:         newBuildInfo(buildinfo.Read()),
	}
	for _, col := range append([]prometheus.Collector{
		m.SessionsStarted, m.SessionsFinished, m.SessionDuration, m.SessionsInFlight, m.SessionsQueued,
		m.ConnOpens, m.ConnCloses, m.ConnFailures, m.ConnTimeouts, m.ConnRestarts, m.ConnState, m.SingleConnect, m.ConnsOpen,
		m.PacketsSent, m.PacketsReceived, m.BytesSent, m.BytesReceived, m.BadPackets, m.ConnectionLost,
		m.Failovers, m.ServerDead, m.HoldDowns, m.DeadLetters, m.SupervisorEvents, m.ActorPanics,
		m.SpoolDepth, m.SpoolDropped, m.SpoolReplayed, m.ConfigReloads, m.APIRequests, m.APIRejected,
		m.AuthRateLimited, m.PolicyDecisions, m.PolicyHandlerRuns, m.BuildInfo,
	}, append(append(append(m.TLS.collectors(), m.Spool.collectors()...), m.NSS.collectors()...), m.Proxy.collectors()...)...) {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// newBuildInfo is the constant 1 labelled with the build, the usual _build_info pattern: dashboards join
// on it, and a restart into a new build shows as a label change.
func newBuildInfo(in buildinfo.Info) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tacagent", Name: "build_info",
		Help: "Always 1; the labels say which build runs (from the Go toolchain's embedded build information).",
		ConstLabels: prometheus.Labels{"version": in.Version, "revision": in.Revision, "goversion": in.GoVersion,
			"modified": strconv.FormatBool(in.Modified)}})
	g.Set(1)
	return g
}

// Server is the per-server view of the collectors, with label values resolved once.
type Server struct {
	Addr            string
	InFlight        prometheus.Gauge
	Queued          prometheus.Gauge
	Opens           prometheus.Counter
	Failures        prometheus.Counter
	Timeouts        prometheus.Counter
	Restarts        prometheus.Counter
	State           prometheus.Gauge
	SingleConnect   prometheus.Gauge
	ConnsOpen       prometheus.Gauge
	PacketsSent     prometheus.Counter
	PacketsReceived prometheus.Counter
	BytesSent       prometheus.Counter
	BytesReceived   prometheus.Counter
	ConnectionLost  prometheus.Counter
	Dead            prometheus.Gauge
	m               *Metrics
	// children caches the per-kind and per-outcome series of this server (childKey -> collector), so that
	// a session does not hash its labels at every start and end.
	children sync.Map
}

type childKey struct {
	which         uint8 // 0 started, 1 finished, 2 duration
	kind, outcome string
}

func (s *Server) counter(k childKey) prometheus.Counter {
	if c, ok := s.children.Load(k); ok {
		return c.(prometheus.Counter)
	}
	var c prometheus.Counter
	if k.which == 0 {
		c = s.m.SessionsStarted.WithLabelValues(k.kind, s.Addr)
	} else {
		c = s.m.SessionsFinished.WithLabelValues(k.kind, k.outcome, s.Addr)
	}
	s.children.Store(k, c)
	return c
}

func (s *Server) duration(kind string) prometheus.Observer {
	k := childKey{which: 2, kind: kind}
	if o, ok := s.children.Load(k); ok {
		return o.(prometheus.Observer)
	}
	o := s.m.SessionDuration.WithLabelValues(kind)
	s.children.Store(k, o)
	return o
}

// Server returns the view for the server at addr ("host:port").
func (m *Metrics) Server(addr string) *Server {
	return &Server{
		Addr:            addr,
		InFlight:        m.SessionsInFlight.WithLabelValues(addr),
		Queued:          m.SessionsQueued.WithLabelValues(addr),
		Opens:           m.ConnOpens.WithLabelValues(addr),
		Failures:        m.ConnFailures.WithLabelValues(addr),
		Timeouts:        m.ConnTimeouts.WithLabelValues(addr),
		Restarts:        m.ConnRestarts.WithLabelValues(addr),
		State:           m.ConnState.WithLabelValues(addr),
		SingleConnect:   m.SingleConnect.WithLabelValues(addr),
		ConnsOpen:       m.ConnsOpen.WithLabelValues(addr),
		PacketsSent:     m.PacketsSent.WithLabelValues(addr),
		PacketsReceived: m.PacketsReceived.WithLabelValues(addr),
		BytesSent:       m.BytesSent.WithLabelValues(addr),
		BytesReceived:   m.BytesReceived.WithLabelValues(addr),
		ConnectionLost:  m.ConnectionLost.WithLabelValues(addr),
		Dead:            m.ServerDead.WithLabelValues(addr),
		m:               m,
	}
}

// Closed counts a connection close with its reason (eof, reset, bad_secret, idle, ...).
func (s *Server) Closed(reason string) { s.m.ConnCloses.WithLabelValues(s.Addr, reason).Inc() }

// BadPacket counts a rejected packet; reason is a tacplus.Reason name.
func (s *Server) BadPacket(reason string) { s.m.BadPackets.WithLabelValues(s.Addr, reason).Inc() }

// SessionStarted counts a session of kind on this server, and one more in flight. Each session calls it
// once and SessionFinished once, so started, finished and in flight always agree.
func (s *Server) SessionStarted(kind string) {
	s.counter(childKey{which: 0, kind: kind}).Inc()
	s.InFlight.Inc()
}

// SessionFinished counts a session's end; outcome is "ok" or an error class name. seconds is its duration.
func (s *Server) SessionFinished(kind, outcome string, seconds float64) {
	s.InFlight.Dec()
	s.counter(childKey{which: 1, kind: kind, outcome: outcome}).Inc()
	s.duration(kind).Observe(seconds)
}

// Nop returns a Metrics registered on a private registry, for code paths that run without an exporter.
func Nop() *Metrics {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		panic(err) // a fresh registry cannot hold duplicates
	}
	return m
}
