package metrics

import "github.com/prometheus/client_golang/prometheus"

// Proxy holds the collectors of the loopback TACACS+ front end (tacagent_proxy_*). Labels are closed
// sets: a kind, an outcome class, a decode reason, a refusal reason; never a user, an address or a key.
type Proxy struct {
	Connections     prometheus.Counter       // client connections accepted
	Clients         prometheus.Gauge         // client connections open
	Rejected        *prometheus.CounterVec   // reason: connections or sessions refused by a limit or rule
	Sessions        *prometheus.CounterVec   // kind, outcome: client sessions answered
	SessionsActive  prometheus.Gauge         // client sessions running
	SessionDuration *prometheus.HistogramVec // kind: from the client's first packet to the final reply
	BadPackets      *prometheus.CounterVec   // reason: client packets refused (the connection is closed)
	Timeouts        *prometheus.CounterVec   // what: read, write, conversation
	RateLimited     prometheus.Counter       // authentications refused by the failure rate limit
}

// NewProxy returns unregistered collectors (New registers the ones in Metrics.Proxy).
func NewProxy() *Proxy {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tacagent", Subsystem: "proxy", Name: name, Help: help})
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tacagent", Subsystem: "proxy", Name: name, Help: help}, labels)
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tacagent", Subsystem: "proxy", Name: name, Help: help})
	}
	return &Proxy{
		Connections:    c("connections_total", "Client connections accepted by the loopback TACACS+ front end."),
		Clients:        g("clients", "Client connections open on the loopback TACACS+ front end."),
		Rejected:       cv("rejected_total", "Client connections or sessions refused by a limit or rule, by reason.", "reason"),
		Sessions:       cv("sessions_total", "Client sessions answered by the front end, by kind and outcome (the reply's status, or the error class).", "kind", "outcome"),
		SessionsActive: g("sessions_active", "Client sessions running on the front end."),
		SessionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "tacagent", Subsystem: "proxy", Name: "session_duration_seconds",
			Help: "Time from a client session's first packet to its final reply, by kind.", Buckets: DurationBuckets}, []string{"kind"}),
		BadPackets:  cv("bad_packets_total", "Client packets the front end refused, by reason; the client's connection is closed.", "reason"),
		Timeouts:    cv("timeouts_total", "Client connections cut by a deadline, by what timed out (read, write, conversation).", "what"),
		RateLimited: c("rate_limited_total", "Front-end authentications refused by the failure rate limit."),
	}
}

func (p *Proxy) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.Connections, p.Clients, p.Rejected, p.Sessions, p.SessionsActive, p.SessionDuration,
		p.BadPackets, p.Timeouts, p.RateLimited}
}
