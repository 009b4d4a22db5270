// Package tlsconf is TACACS+ over TLS 1.3 (RFC 9887) for the agent: the client TLS settings of one server,
// a certificate store that reloads its files, server identity checks per RFC 9525, SPKI pins, and a dialer
// that plugs into the connection actor (connection.Config.Dial, agent.Server.Dial).
//
// Rules it enforces (docs/tls.md):
//   - TLS 1.3 only; no early data (crypto/tls has no client 0-RTT); session resumption on (a per-server
//     session cache).
//   - The server's chain is verified against the configured CA bundle only; then its identity: a DNS-ID
//     or IP-ID in subjectAltName matching the reference identity (server_name, else the address's host),
//     never the subject CN; a wildcard only as the whole leftmost label, matching exactly one label.
//   - Optional SPKI pins (sha256 of the SubjectPublicKeyInfo of any certificate in the verified chain)
//     are checked in addition to the chain, never instead of it.
//   - A handshake failure is a dial failure: the connection actor reports Failure{Dial: true}, and the
//     supervisor dead-times the server and fails over. Nothing ever falls back to plaintext.
//   - Each TACACS+ packet goes out in its own TLS record unless Coalesce is set (docs/tls.md).
package tlsconf
