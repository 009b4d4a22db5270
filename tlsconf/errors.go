package tlsconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Handshake failure reasons: the label values of tacagent_tls_handshake_failures_total. A closed set.
const (
	ReasonExpired        = "expired"              // a certificate of the server's chain is past notAfter
	ReasonNotYetValid    = "not_yet_valid"        // ... or before notBefore (a clock problem, often)
	ReasonUnknownCA      = "unknown_ca"           // the chain does not lead to the configured CA bundle
	ReasonWrongName      = "wrong_name"           // no DNS-ID/IP-ID matches the reference identity
	ReasonPinMismatch    = "pin_mismatch"         // no SPKI of the verified chain is pinned
	ReasonBadCertificate = "bad_certificate"      // no certificate, wrong key usage, unparsable
	ReasonVersion        = "protocol_version"     // the server does not speak TLS 1.3
	ReasonCertRequired   = "client_cert_required" // the server wants a client certificate we do not have
	ReasonClientRejected = "client_cert_rejected" // the server refused our client certificate
	ReasonTimeout        = "timeout"              // the handshake did not finish within the connect timeout
	ReasonClosed         = "closed"               // the server closed or reset the connection mid-handshake
	ReasonRemoteAlert    = "remote_alert"         // another alert from the server
	ReasonNotTLS         = "not_tls"              // the server does not speak TLS at all (plain TACACS+?)
	ReasonOther          = "other"
)

// HandshakeError is a refused or failed TLS handshake with a server. It is returned by Dialer.Dial, so
// the connection actor reports a connect failure: the server is dead-timed and the request fails over.
// It may also surface from the first Read when a TLS 1.3 server refuses the client certificate after the
// client's side of the handshake completed (the protocol allows no earlier signal).
type HandshakeError struct {
	Server string // address
	Reason string // one of the Reason constants
	Err    error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("TLS handshake with %s failed (%s): %v", e.Server, e.Reason, e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// verifyError is what VerifyConnection returns: crypto/tls hands it back from the handshake unchanged.
type verifyError struct {
	reason string
	err    error
}

func (e *verifyError) Error() string { return e.err.Error() }
func (e *verifyError) Unwrap() error { return e.err }

// classify names the reason of a handshake (or first read) error.
func classify(ctx context.Context, err error) string {
	var ve *verifyError
	if errors.As(err, &ve) {
		return ve.reason
	}
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return ReasonTimeout
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "protocol version not supported"), strings.Contains(msg, "unsupported protocol version"),
		strings.Contains(msg, "server selected unsupported"):
		return ReasonVersion
	case strings.Contains(msg, "certificate required"):
		return ReasonCertRequired
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"),
		strings.Contains(msg, "remote error: tls: certificate expired"), strings.Contains(msg, "remote error: tls: unsupported certificate"):
		return ReasonClientRejected
	case strings.Contains(msg, "does not look like a TLS handshake"), strings.Contains(msg, "oversized record"):
		return ReasonNotTLS
	case strings.Contains(msg, "remote error"):
		return ReasonRemoteAlert
	case strings.Contains(msg, "EOF"), strings.Contains(msg, "reset by peer"), strings.Contains(msg, "broken pipe"):
		return ReasonClosed
	}
	return ReasonOther
}
