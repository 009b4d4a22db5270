package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// TLS holds the collectors of TACACS+ over TLS (RFC 9887). New creates it as Metrics.TLS.
type TLS struct {
	Handshakes        *prometheus.CounterVec // server
	HandshakeFailures *prometheus.CounterVec // server, reason
	// CertExpiry is tacagent_tls_certificate_expiry_timestamp_seconds: the notAfter of the agent's client
	// certificate for a server (role "client") and of the leaf certificate a server presented in its last
	// handshake (role "server"), as Unix seconds.
	CertExpiry *prometheus.GaugeVec // server, role
	Reloads    *prometheus.CounterVec
}

func newTLS() *TLS {
	return &TLS{
		Handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tacagent", Name: "tls_handshakes_total",
			Help: "TLS 1.3 handshakes completed and verified with a TACACS+ server."}, []string{"server"}),
		HandshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tacagent", Name: "tls_handshake_failures_total",
			Help: "TLS handshakes with a TACACS+ server that failed, by reason (expired, unknown_ca, wrong_name, pin_mismatch, protocol_version, client_cert_required, timeout, ...)."},
			[]string{"server", "reason"}),
		CertExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tacagent", Name: "tls_certificate_expiry_timestamp_seconds",
			Help: "notAfter of a certificate as Unix seconds: the agent's client certificate (role=client) and the certificate each server presented (role=server)."},
			[]string{"server", "role"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tacagent", Name: "tls_reloads_total",
			Help: "Reloads of TLS certificate files after they changed, by result (ok, error)."}, []string{"server", "result"}),
	}
}

func (t *TLS) collectors() []prometheus.Collector {
	return []prometheus.Collector{t.Handshakes, t.HandshakeFailures, t.CertExpiry, t.Reloads}
}

// TLSHandshake counts a verified handshake with this server.
func (s *Server) TLSHandshake() { s.m.TLS.Handshakes.WithLabelValues(s.Addr).Inc() }

// TLSHandshakeFailed counts a failed handshake with this server; reason is a tlsconf reason name.
func (s *Server) TLSHandshakeFailed(reason string) {
	s.m.TLS.HandshakeFailures.WithLabelValues(s.Addr, reason).Inc()
}

// TLSExpiry sets the expiry gauge of this server's certificate of role ("client" or "server").
func (s *Server) TLSExpiry(role string, unixSeconds float64) {
	s.m.TLS.CertExpiry.WithLabelValues(s.Addr, role).Set(unixSeconds)
}

// TLSReload counts a reload of this server's certificate files; result is "ok" or "error".
func (s *Server) TLSReload(result string) { s.m.TLS.Reloads.WithLabelValues(s.Addr, result).Inc() }

type serverKey struct{}

// NewContext returns ctx carrying the per-server view s; the connection actor passes it to its dialer so
// that a TLS dialer can count handshakes without a reference of its own.
func NewContext(ctx context.Context, s *Server) context.Context {
	if s == nil {
		return ctx
	}
	return context.WithValue(ctx, serverKey{}, s)
}

// FromContext returns the per-server view NewContext stored, or nil.
func FromContext(ctx context.Context) *Server {
	s, _ := ctx.Value(serverKey{}).(*Server)
	return s
}
