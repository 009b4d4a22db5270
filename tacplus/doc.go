// Package tacplus is the TACACS+ wire codec (RFC 8907, and the clear-text mode RFC 9887 uses inside TLS).
//
// It turns bytes into typed packets and back: the 12-byte header (section 4.1), the seven bodies
// (sections 5, 6 and 7), body obfuscation (section 4.5) and stream framing. Every length is checked before
// it is used, a short input is always an error, and field lengths that do not add up after de-obfuscation
// are reported as a bad shared secret. It also holds the project's error taxonomy (errors.go), because every
// layer above the codec returns those classes.
//
// This package is pure: it imports only the standard library, does no logging, keeps no global state and
// knows nothing of actors, metrics or configuration files.
package tacplus
