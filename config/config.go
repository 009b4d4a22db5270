package config

import (
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tlsconf"
)

// Defaults. The durations and sizes are the agent's own defaults, named once there and reused here, so that
// the file, the documentation and the code agree.
const (
	DefaultPath = "/etc/tacagent/tacagent.yaml"

	// DefaultPort is the TACACS+ port (RFC 8907 section 4), used when an address has none.
	DefaultPort = "49"

	DefaultTimeout        = agentconfig.DefaultTimeout
	DefaultConnectTimeout = agentconfig.DefaultDialTimeout
	DefaultIdleTimeout    = agentconfig.DefaultIdleTimeout
	DefaultMaxInFlight    = agentconfig.DefaultMaxInFlight
	// MaxConnectionsPerServer bounds servers.connections_per_server.
	MaxConnectionsPerServer = agentconfig.MaxConnectionsPerServer
	DefaultMaxBody          = tacplus.DefaultMaxBodyLen
	DefaultDeadTime         = agentconfig.DefaultDeadTime
	// DefaultSingleConnectHoldDown is single_connect_hold_down's default.
	DefaultSingleConnectHoldDown = agentconfig.DefaultHoldDown
	// DefaultMaxConnectionAge is max_connection_age's default.
	DefaultMaxConnectionAge = agentconfig.DefaultMaxAge
	DefaultBackoffInitial   = agentconfig.DefaultBackoffInitial
	DefaultBackoffMax       = agentconfig.DefaultBackoffMax
	// DefaultUserTimeout is how long a prompt waits for a person's answer: the local API's conversation
	// timeout (60 s); the agent's own default (2 min) is only for programs embedding it.
	DefaultUserTimeout = localapi.DefaultConversationTimeout

	// DefaultFailureMax failed authentications of one user within DefaultFailureWindow make the local API
	// refuse that user's next attempts until the window moves on.
	DefaultFailureMax    = 5
	DefaultFailureWindow = time.Minute
	// DefaultFailureBaseDelay is the first delay once a key is over the limit; each further failure
	// doubles it up to DefaultFailureMaxDelay. DefaultFailureMaxKeys bounds the keys tracked at once.
	DefaultFailureBaseDelay = localapi.DefaultBaseDelay
	DefaultFailureMaxDelay  = localapi.DefaultMaxDelay
	DefaultFailureMaxKeys   = localapi.DefaultRateLimitKeys

	// DefaultConversationShare and DefaultConnectionShare bound what one uid other than root holds in the
	// local API at once: authentications in progress, and open connections.
	DefaultConversationShare = localapi.DefaultConversationShare
	DefaultConnectionShare   = localapi.DefaultConnectionShare
	// DefaultMetricsMaxConnections caps the connections of the /metrics listener.
	DefaultMetricsMaxConnections = metrics.DefaultMaxConns

	// The accounting spool's defaults (spool package).
	DefaultSpoolPath            = agentconfig.DefaultSpoolPath
	DefaultSpoolMaxRecords      = agentconfig.DefaultSpoolMaxRecords
	DefaultSpoolMaxBytes        = agentconfig.DefaultSpoolMaxBytes
	DefaultSpoolRetryInitial    = agentconfig.DefaultSpoolRetryInitial
	DefaultSpoolRetryMax        = agentconfig.DefaultSpoolRetryMax
	DefaultSpoolDeadLetterAfter = agentconfig.DefaultSpoolDeadLetterAfter

	DefaultGroup           = "default" // the name of the group made when none is configured
	DefaultMetricsAddress  = "127.0.0.1:9949"
	DefaultSocket          = "/run/tacagent/tacagent.sock"
	DefaultSocketMode      = fs.FileMode(0o660)
	DefaultMaxRequestBytes = 64 << 10
	DefaultLogLevel        = "info"

	// MinKeyLen is the shortest shared secret accepted without allow_short_key. RFC 8907 section 10.5.1
	// recommends secrets of at least 16 characters.
	MinKeyLen = 16
	// maxKeyFileSize bounds what is read from a key file, so that a wrong path (/dev/zero) fails cleanly.
	maxKeyFileSize = 64 << 10
)

// DefaultSecretCommands are log.secret_commands' default: commands whose arguments carry secrets (a
// password, a community string, a key). The daemon's own default (daemon.DefaultSecretCommands, for
// settings built in Go) is the same list; a test keeps them equal.
var DefaultSecretCommands = []string{"enable", "passwd", "chpasswd", "password", "username", "snmp-server", "key", "tacacs-server", "radius-server", "crypto"}

// LogLevels are the accepted values of log.level.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Config is the daemon's configuration file. Build one with Parse, Load or Default; a Config built field by
// field in Go should start from Default, because decoding starts from the defaults too (single_connect is
// true unless the file says otherwise).
//
// Validate fills in defaults, normalizes server addresses and reads the keys. A Config is not safe for
// concurrent mutation.
type Config struct {
	Servers  []Server      `yaml:"servers"`
	Groups   []Group       `yaml:"groups"` // the first is the default group
	DeadTime time.Duration `yaml:"dead_time"`
	// SingleConnectHoldDown: after one of its connections desynchronised (a reply it could not match to a
	// live session), a server is used one connection per session for this long (or until a reload).
	SingleConnectHoldDown time.Duration `yaml:"single_connect_hold_down"`
	// MaxConnectionAge: a long-lived connection older than this (plus or minus 10% jitter) takes no new
	// sessions and closes once its sessions end; a fresh one takes over.
	MaxConnectionAge time.Duration  `yaml:"max_connection_age"`
	Backoff          Backoff        `yaml:"backoff"`
	Authentication   Authentication `yaml:"authentication"`
	Authorization    Authorization  `yaml:"authorization"`
	Accounting       Accounting     `yaml:"accounting"`
	Metrics          Metrics        `yaml:"metrics"`
	API              API            `yaml:"api"`
	Listen           Listen         `yaml:"listen"`
	Log              Log            `yaml:"log"`
	// NSS maps TACACS+ users to local template accounts for the NSS module (nss.go).
	NSS NSS `yaml:"nss"`

	// RequireTLS refuses any server without TLS (tls.go).
	RequireTLS bool `yaml:"require_tls"`

	source string         // file name for errors
	lines  map[string]int // field path -> YAML line
}

// Server is one TACACS+ server.
type Server struct {
	// Name is unique among servers; groups refer to servers by it. Default: the normalized address.
	Name string `yaml:"name"`
	// Address is "host:port", "[v6]:port", or a host alone (port 49). Validate normalizes it to host:port.
	Address string `yaml:"address"`
	// KeyFile and KeyEnv are the two sources of the shared secret; exactly one is set, unless the server is
	// unencrypted. The file content loses one trailing newline.
	KeyFile string `yaml:"key_file"`
	KeyEnv  string `yaml:"key_env"`
	// AllowShortKey accepts keys shorter than MinKeyLen bytes.
	AllowShortKey bool `yaml:"allow_short_key"`
	// AllowInsecureKeyFile accepts a key file that every user may read.
	AllowInsecureKeyFile bool `yaml:"allow_insecure_key_file"`
	// Unencrypted sends bodies in the clear (RFC 8907 section 10.5.2 forbids it in production); it needs
	// AllowUnencrypted too, and no key.
	Unencrypted      bool `yaml:"unencrypted"`
	AllowUnencrypted bool `yaml:"allow_unencrypted"`
	// Timeout bounds the wait for each reply.
	Timeout        time.Duration `yaml:"timeout"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// IdleTimeout closes a connection without sessions after this long; negative ("never") keeps it.
	IdleTimeout time.Duration `yaml:"idle_timeout" config:"never"`
	// SingleConnect asks for single-connection mode (RFC 8907 section 4.3). Default true.
	SingleConnect bool `yaml:"single_connect"`
	MaxInFlight   int  `yaml:"max_in_flight"`
	// ConnectionsPerServer is how many multiplexed connections to keep to the server; default 1.
	ConnectionsPerServer int    `yaml:"connections_per_server"`
	SourceAddress        string `yaml:"source_address"` // local IP to connect from; "" lets the kernel choose
	MaxBody              uint32 `yaml:"max_body"`       // largest body accepted from the server, bytes
	// TLS is TACACS+ over TLS 1.3 (tls.go).
	TLS TLS `yaml:"tls"`

	// key is the loaded secret, behind a pointer so that fmt prints an address, never its bytes.
	key *secret
	// tlsStore holds the loaded TLS material when TLS is enabled (checkTLS).
	tlsStore *tlsconf.Store
}

// Group is an ordered list of servers, by name.
type Group struct {
	Name    string   `yaml:"name"`
	Servers []string `yaml:"servers"`
}

// Backoff bounds the capped exponential delay between connection restarts.
type Backoff struct {
	Initial time.Duration `yaml:"initial"`
	Max     time.Duration `yaml:"max"`
}

// Authentication is the authentication stack (policy.Config's stack list) and the local API's limits.
type Authentication struct {
	policy.Config `yaml:",inline"`
	// UserTimeout bounds how long a session waits for the user to answer a prompt.
	UserTimeout  time.Duration `yaml:"user_timeout"`
	FailureLimit FailureLimit  `yaml:"failure_limit"`
}

// FailureLimit is the failed-authentication rate limit of the local API. Max 0 disables it.
type FailureLimit struct {
	Max int `yaml:"max"`
	// Window is the quiet period after which a key's failures are forgotten.
	Window    time.Duration `yaml:"window"`
	BaseDelay time.Duration `yaml:"base_delay"` // first delay past Max; doubles with each failure
	MaxDelay  time.Duration `yaml:"max_delay"`  // cap of the delay
	MaxKeys   int           `yaml:"max_keys"`   // keys tracked at once; new keys are refused when full
}

// Authorization configures command and service authorization.
type Authorization struct {
	Group   string        `yaml:"group"`   // server group; "" is the default group
	Timeout time.Duration `yaml:"timeout"` // bound on one request; 0 leaves it to the servers' timeouts
}

// Accounting configures accounting records.
type Accounting struct {
	Group string `yaml:"group"` // server group; "" is the default group
	Spool Spool  `yaml:"spool"`
}

// Spool is the durable accounting spool (spool package): every record is fsynced before its caller is
// answered and kept until a server answered SUCCESS. It applies at the next start, not on reload.
type Spool struct {
	// Enable turns the spool on (default true); false sends each record once, as the caller waits.
	Enable bool   `yaml:"enable"`
	Path   string `yaml:"path"` // absolute path of the bbolt file; its directory is made (0700) when missing
	// MaxRecords and MaxBytes cap the records waiting (bytes: their encoded size); past either the oldest
	// are dropped, counted and logged.
	MaxRecords int   `yaml:"max_records"`
	MaxBytes   int64 `yaml:"max_bytes"`
	// RetryInitial and RetryMax bound the doubling delay after an ERROR (per task) or an outage (all).
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`
	// DeadLetterAfter: ERROR answers to one record, with other records taken in between, before it goes to
	// the dead-letter bucket.
	DeadLetterAfter int `yaml:"dead_letter_after"`
}

// Metrics configures the HTTP listener serving /metrics, /healthz and /readyz.
type Metrics struct {
	Address string `yaml:"address"` // host:port; "" disables the listener
	// MaxConnections caps the listener's open connections; past it new ones wait in the kernel's backlog.
	MaxConnections int `yaml:"max_connections"`
}

// API configures the local API's unix socket.
type API struct {
	Socket string      `yaml:"socket"` // absolute path
	Mode   fs.FileMode `yaml:"mode"`   // written as an octal string, "0660"
	// Group owns the socket and may call the API, besides root; "" means root only.
	Group           string `yaml:"group"`
	MaxRequestBytes int    `yaml:"max_request_bytes"`
	// ConversationShare and ConnectionShare bound one uid other than root: authentications in progress and
	// open connections at once.
	ConversationShare int `yaml:"conversation_share"`
	ConnectionShare   int `yaml:"connection_share"`
}

// Listen configures the daemon's network front ends besides the local API.
type Listen struct {
	TACACS ListenTACACS `yaml:"tacacs"`
}

// ListenTACACS is the loopback TACACS+ front end: RFC 8907 clients (pam_tacplus, bash_tacplus,
// audisp-tacplus, tacquito) connect to Address with the local key, and their sessions go through the
// agent's servers (docs/proxy.md). It applies at start; a reload that changes it is logged and waits for
// the next start.
type ListenTACACS struct {
	// Address is "IP:port", such as 127.0.0.1:49; "" (the default) turns the front end off. The IP must be
	// a loopback address unless AllowNonLoopback is set.
	Address string `yaml:"address"`
	// KeyFile or KeyEnv holds the local key shared with the clients, under the rules of a server's key.
	// It must differ from every server's key: a local client must not hold a server's secret.
	KeyFile              string `yaml:"key_file"`
	KeyEnv               string `yaml:"key_env"`
	AllowShortKey        bool   `yaml:"allow_short_key"`
	AllowInsecureKeyFile bool   `yaml:"allow_insecure_key_file"`
	AllowNonLoopback     bool   `yaml:"allow_nonloopback"`
	// MaxClients caps the open client connections; ConnectionShare and SessionShare bound one uid other
	// than root (connections, sessions in progress); MaxSessionsPerClient bounds one connection.
	MaxClients           int `yaml:"max_clients"`
	ConnectionShare      int `yaml:"connection_share"`
	SessionShare         int `yaml:"session_share"`
	MaxSessionsPerClient int `yaml:"max_sessions_per_client"`
	// IdleTimeout bounds the wait for a client's next packet while none of its sessions is in progress;
	// WriteTimeout each write to a client;
	// ConversationTimeout a client's answer to a prompt; RequestTimeout an authorization or accounting
	// request.
	IdleTimeout         time.Duration `yaml:"idle_timeout"`
	WriteTimeout        time.Duration `yaml:"write_timeout"`
	ConversationTimeout time.Duration `yaml:"conversation_timeout"`
	RequestTimeout      time.Duration `yaml:"request_timeout"`

	key *secret
}

// Key returns the front end's local key (nil when off or not loaded).
func (l *ListenTACACS) Key() []byte {
	if l.key == nil {
		return nil
	}
	return l.key.b
}

// Log configures the daemon's log.
type Log struct {
	Level string `yaml:"level"` // one of LogLevels
	// SecretCommands are authorization commands whose arguments are never logged (first word, any case).
	// Default: DefaultSecretCommands; a list given replaces it ([] logs every command's arguments
	// at debug).
	SecretCommands []string `yaml:"secret_commands"`
}

// Default returns the configuration of `tacagent demo`: one server at address with key (copied, held in
// memory), every other field at its default. The key still has to pass Validate's rules.
func Default(address string, key []byte) *Config {
	c := defaults()
	s := defaultServer()
	s.Address = address
	s.key = &secret{b: append([]byte(nil), key...), source: sourceMemory}
	c.Servers = []Server{s}
	return c
}

// defaults is a Config with every section at its default and no servers; decoding starts from it.
func defaults() *Config {
	return &Config{
		DeadTime:              DefaultDeadTime,
		SingleConnectHoldDown: DefaultSingleConnectHoldDown,
		MaxConnectionAge:      DefaultMaxConnectionAge,
		Backoff:               Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
		Authentication: Authentication{
			UserTimeout: DefaultUserTimeout,
			FailureLimit: FailureLimit{Max: DefaultFailureMax, Window: DefaultFailureWindow, BaseDelay: DefaultFailureBaseDelay,
				MaxDelay: DefaultFailureMaxDelay, MaxKeys: DefaultFailureMaxKeys},
		},
		Accounting: Accounting{Spool: Spool{Enable: true, Path: DefaultSpoolPath, MaxRecords: DefaultSpoolMaxRecords,
			MaxBytes: DefaultSpoolMaxBytes, RetryInitial: DefaultSpoolRetryInitial, RetryMax: DefaultSpoolRetryMax,
			DeadLetterAfter: DefaultSpoolDeadLetterAfter}},
		Metrics: Metrics{Address: DefaultMetricsAddress, MaxConnections: DefaultMetricsMaxConnections},
		API: API{Socket: DefaultSocket, Mode: DefaultSocketMode, MaxRequestBytes: DefaultMaxRequestBytes,
			ConversationShare: DefaultConversationShare, ConnectionShare: DefaultConnectionShare},
		Listen: Listen{TACACS: ListenTACACS{MaxClients: agentconfig.DefaultProxyMaxClients,
			ConnectionShare: agentconfig.DefaultProxyConnectionShare, SessionShare: agentconfig.DefaultProxySessionShare,
			MaxSessionsPerClient: agentconfig.DefaultProxyMaxSessionsPerClient, IdleTimeout: agentconfig.DefaultProxyIdleTimeout,
			WriteTimeout: agentconfig.DefaultProxyWriteTimeout, ConversationTimeout: agentconfig.DefaultProxyConversationTimeout,
			RequestTimeout: agentconfig.DefaultProxyRequestTimeout}},
		Log: Log{Level: DefaultLogLevel, SecretCommands: slices.Clone(DefaultSecretCommands)},
	}
}

func defaultServer() Server {
	return Server{
		Timeout: DefaultTimeout, ConnectTimeout: DefaultConnectTimeout, IdleTimeout: DefaultIdleTimeout,
		SingleConnect: true, MaxInFlight: DefaultMaxInFlight, MaxBody: DefaultMaxBody, ConnectionsPerServer: 1,
	}
}

// setDefaults makes a server decoded from a list item start from the defaults.
func (s *Server) setDefaults() { *s = defaultServer() }

// Source returns the file name the Config was loaded from ("" for Default).
func (c *Config) Source() string { return c.source }

// Line returns the YAML line a field path ("servers[1].timeout") was read from, or of its nearest
// ancestor; 0 when unknown.
func (c *Config) Line(field string) int { return (&problems{lines: c.lines}).line(field) }

// GroupNames returns the server groups' names in config order; the first is the default group. With no
// groups configured it is [DefaultGroup].
func (c *Config) GroupNames() []string {
	if len(c.Groups) == 0 {
		return []string{DefaultGroup}
	}
	names := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		names[i] = g.Name
	}
	return names
}

// DefaultGroupName returns the name of the default group: the first configured, or DefaultGroup.
func (c *Config) DefaultGroupName() string { return c.GroupNames()[0] }

// HasKey reports whether the server's shared secret has been loaded (by Validate, or given to Default).
func (s *Server) HasKey() bool { return s.key != nil && len(s.key.b) > 0 }

// String describes where a Config came from; it never shows a key.
func (c *Config) String() string {
	return fmt.Sprintf("config.Config{source=%q servers=%d groups=%v}", c.source, len(c.Servers), c.GroupNames())
}
