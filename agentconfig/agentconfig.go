package agentconfig

import (
	"context"
	"net"
	"time"
)

// Defaults the agent applies to a zero field.
const (
	DefaultTimeout          = 5 * time.Second       // Server.Timeout: wait for each reply
	DefaultDialTimeout      = 2 * time.Second       // Server.DialTimeout: one connect
	DefaultIdleTimeout      = 10 * time.Second      // Server.IdleTimeout: below tacquito's 15 s, so that we close first
	DefaultMaxInFlight      = 1024                  // Server.MaxInFlight
	MaxConnectionsPerServer = 64                    // the largest Server.ConnectionsPerServer
	DefaultDeadTime         = 30 * time.Second      // Config.DeadTime
	DefaultBackoffInitial   = 50 * time.Millisecond // Config.BackoffInitial
	DefaultBackoffMax       = 5 * time.Second       // Config.BackoffMax
	DefaultHoldDown         = time.Hour             // Config.SingleConnectHoldDown
	DefaultMaxAge           = 10 * time.Minute      // Config.MaxConnectionAge
	DefaultUserTimeout      = 2 * time.Minute       // Config.UserTimeout (the daemon uses its own, shorter one)
	DefaultMaxBodyLen       = uint32(64 << 10)      // Server.MaxBodyLen
)

// Server configures one TACACS+ server.
type Server struct {
	Addr string // "host:port" or "[v6]:port": the server's identity in groups, metrics and errors
	// Name is the operator's name for the server (status, logs); "" means Addr.
	Name string
	// Key is the shared secret. It is copied; it is never logged.
	Key []byte
	// Unencrypted sends bodies in the clear (RFC 8907 section 10.5.2 forbids it in production); it needs
	// AllowUnencrypted as well.
	Unencrypted      bool
	AllowUnencrypted bool
	Timeout          time.Duration // per server reply; default DefaultTimeout
	DialTimeout      time.Duration // default DefaultDialTimeout
	IdleTimeout      time.Duration // default DefaultIdleTimeout; <0 keeps idle connections
	// NoSingleConnect stops the agent from asking for single-connect mode (RFC 8907 section 4.3); by default
	// it asks, and falls back to one connection per session when the server does not agree.
	NoSingleConnect bool
	MaxInFlight     int // sessions at once on one connection; default DefaultMaxInFlight
	// ConnectionsPerServer is how many long-lived multiplexed connections the agent keeps to the server
	// (default 1, at most MaxConnectionsPerServer); new sessions go to them in turn. A server that serves
	// each connection with one worker gives more throughput over several.
	ConnectionsPerServer int
	SourceAddr           string // local IP to connect from
	MaxBodyLen           uint32 // largest body accepted; default DefaultMaxBodyLen
	// Dial replaces the TCP dialer (TLS, tests).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// TLS reports what the last verified TLS handshake with the server established, for status; nil for a
	// plaintext server.
	TLS func() (TLSState, bool)
}

// TLSState is what a verified TLS handshake with a server established.
type TLSState struct {
	Version      string    // "TLS 1.3"
	PeerIdentity string    // the subjectAltName that matched: "DNS:tacacs.example.net" or "IP:192.0.2.1"
	PeerExpiry   time.Time // notAfter of the server's leaf certificate
	ClientExpiry time.Time // notAfter of the agent's client certificate; zero without mutual TLS
	Resumed      bool      // the session was resumed from a ticket
	At           time.Time // when the handshake completed
}

// Group is an ordered list of servers, by address.
type Group struct {
	Name    string
	Servers []string
}

// Config configures an agent.
type Config struct {
	Servers        []Server
	Groups         []Group       // the first is the default; empty means one group of all servers
	DeadTime       time.Duration // default DefaultDeadTime
	BackoffInitial time.Duration // default DefaultBackoffInitial
	BackoffMax     time.Duration // default DefaultBackoffMax
	UserTimeout    time.Duration // default DefaultUserTimeout
	// SingleConnectHoldDown: after a connection desynchronised, its server is used one connection per
	// session for this long; default DefaultHoldDown.
	SingleConnectHoldDown time.Duration
	// MaxConnectionAge: a long-lived connection older than this (±10% jitter) takes no new sessions and
	// closes when its sessions end; default DefaultMaxAge; negative: never.
	MaxConnectionAge time.Duration
}

// Defaults of the daemon's accounting spool (config `accounting.spool`; package spool applies them).
const (
	DefaultSpoolPath            = "/var/lib/tacagent/spool.db"
	DefaultSpoolMaxRecords      = 100000
	DefaultSpoolMaxBytes        = 64 << 20
	DefaultSpoolRetryInitial    = time.Second
	DefaultSpoolRetryMax        = time.Minute
	DefaultSpoolDeadLetterAfter = 5
)
