package config

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

// Validate checks every rule of the configuration and reports every problem at once: the error wraps
// Errors, one *FieldError per problem, and matches tacplus.ErrConfig. On the way it fills in defaults
// (a zero duration or size means the default), normalizes server addresses to host:port, names unnamed
// servers after their address, and reads each server's key from its file or environment variable. A key
// already read from the same source is kept, so the key Agent uses is the one Validate checked.
func (c *Config) Validate() error {
	if c.lines == nil {
		c.lines = map[string]int{}
	}
	p := &problems{file: c.source, lines: c.lines}
	c.validate(p)
	return p.err()
}

func (c *Config) validate(p *problems) {
	c.checkServers(p)
	c.checkTLS(p)
	c.checkGroups(p)
	c.checkTimers(p)
	c.checkAuthentication(p)
	c.checkAPI(p)
	c.checkListen(p)
	for _, g := range []struct{ path, name string }{
		{"authorization.group", c.Authorization.Group}, {"accounting.group", c.Accounting.Group},
	} {
		if g.name != "" && !slices.Contains(c.GroupNames(), g.name) {
			p.add(g.path, "unknown server group %q (groups: %s)", g.name, strings.Join(c.GroupNames(), ", "))
		}
	}
	if a := c.Metrics.Address; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			p.add("metrics.address", "%q is not host:port (\"\" disables the listener)", a)
		} else if msg := checkPort(port); msg != "" {
			p.add("metrics.address", "%s", msg)
		}
	}
	if !slices.Contains(LogLevels, c.Log.Level) {
		p.add("log.level", "unknown level %q (want %s)", c.Log.Level, strings.Join(LogLevels, ", "))
	}
	for i, w := range c.Log.SecretCommands {
		if !commandWord.MatchString(w) {
			p.add(index("log.secret_commands", i), "%q is not a command name (one word, 1-64 characters)", w)
		}
	}
	count(p, "metrics.max_connections", &c.Metrics.MaxConnections, DefaultMetricsMaxConnections, maxMetricsConnections)
	c.checkSpool(p)
	c.checkNSS(p)
}

func (c *Config) checkSpool(p *problems) {
	sp := &c.Accounting.Spool
	if sp.Path == "" {
		sp.Path = DefaultSpoolPath
	}
	if !filepath.IsAbs(sp.Path) || filepath.Clean(sp.Path) != sp.Path || strings.HasSuffix(sp.Path, "/") {
		p.add("accounting.spool.path", "%q is not a clean absolute file path", sp.Path)
	}
	count(p, "accounting.spool.max_records", &sp.MaxRecords, DefaultSpoolMaxRecords, maxSpoolRecords)
	switch {
	case sp.MaxBytes < 0:
		p.add("accounting.spool.max_bytes", "must be positive")
	case sp.MaxBytes == 0:
		sp.MaxBytes = DefaultSpoolMaxBytes
	case sp.MaxBytes < minSpoolBytes:
		p.add("accounting.spool.max_bytes", "%d is less than the least accepted, %d (a few records)", sp.MaxBytes, minSpoolBytes)
	}
	positive(p, "accounting.spool.retry_initial", &sp.RetryInitial, DefaultSpoolRetryInitial)
	positive(p, "accounting.spool.retry_max", &sp.RetryMax, DefaultSpoolRetryMax)
	if sp.RetryInitial > 0 && sp.RetryMax > 0 && sp.RetryInitial > sp.RetryMax {
		p.add("accounting.spool.retry_initial", "%s is longer than retry_max %s", sp.RetryInitial, sp.RetryMax)
	}
	count(p, "accounting.spool.dead_letter_after", &sp.DeadLetterAfter, DefaultSpoolDeadLetterAfter, 1000)
}

func (c *Config) checkServers(p *problems) {
	if len(c.Servers) == 0 {
		p.add("servers", "at least one server is required")
	}
	names, addrs := map[string]int{}, map[string]int{}
	for i := range c.Servers {
		s := &c.Servers[i]
		base := index("servers", i)
		addrDup := false
		if addr, msg := normalizeAddress(s.addressForTLS()); msg != "" {
			p.add(base+".address", "%s", msg)
		} else {
			s.Address = addr
			if j, dup := addrs[addr]; dup {
				p.add(base+".address", "%s is already the address of servers[%d]", addr, j)
				addrDup = true
			} else {
				addrs[addr] = i
			}
		}
		if s.Name == "" {
			// Named after its address: a repeated address is already reported.
			s.Name = s.Address
		} else {
			addrDup = false
		}
		if j, dup := names[s.Name]; dup && !addrDup {
			p.add(base+".name", "%q is already the name of servers[%d]", s.Name, j)
		} else if !dup {
			names[s.Name] = i
		}
		c.checkKey(p, s, base)
		positive(p, base+".timeout", &s.Timeout, DefaultTimeout)
		positive(p, base+".connect_timeout", &s.ConnectTimeout, DefaultConnectTimeout)
		if s.IdleTimeout == 0 {
			s.IdleTimeout = DefaultIdleTimeout // negative means never, as in the connection actor
		}
		switch {
		case s.MaxInFlight < 0:
			p.add(base+".max_in_flight", "must be positive")
		case s.MaxInFlight == 0:
			s.MaxInFlight = DefaultMaxInFlight
		}
		switch {
		case s.ConnectionsPerServer < 0 || s.ConnectionsPerServer > MaxConnectionsPerServer:
			p.add(base+".connections_per_server", "must be from 1 to %d", MaxConnectionsPerServer)
		case s.ConnectionsPerServer == 0:
			s.ConnectionsPerServer = 1
		}
		if s.MaxBody == 0 {
			s.MaxBody = DefaultMaxBody
		}
		if a := s.SourceAddress; a != "" {
			if _, err := netip.ParseAddr(a); err != nil {
				p.add(base+".source_address", "%q is not an IP address", a)
			}
		}
	}
}

// checkKey enforces the key rules: exactly one source, readable, private, long enough; none when
// unencrypted. Messages name the source, never the key.
func (c *Config) checkKey(p *problems, s *Server, base string) {
	if s.TLS.Enable {
		s.key = nil // no key inside TLS; checkTLS reports one that is configured
		return
	}
	if s.Unencrypted {
		// RFC 8907 section 10.5.2: no unobfuscated transport without an explicit, second flag.
		if !s.AllowUnencrypted {
			p.add(base+".unencrypted", "unencrypted TACACS+ is refused unless allow_unencrypted: true is also set (RFC 8907 section 10.5.2)")
		}
		if s.KeyFile != "" || s.KeyEnv != "" || s.keyIs(sourceMemory) {
			p.add(base+".unencrypted", "an unencrypted server takes no key: remove key_file and key_env")
		}
		s.key = nil
		return
	}
	field := base
	switch {
	case s.KeyFile != "" && s.KeyEnv != "":
		p.add(base+".key_env", "key_file is set too; want exactly one of key_file and key_env")
		return
	case s.KeyFile != "":
		field = base + ".key_file"
		loadKey(p, s, field, s.fileSource(), func() ([]byte, string, error) {
			if !filepath.IsAbs(s.KeyFile) {
				return nil, "must be an absolute path", nil
			}
			return loadKeyFile(s.KeyFile, s.AllowInsecureKeyFile)
		})
	case s.KeyEnv != "":
		field = base + ".key_env"
		loadKey(p, s, field, s.envSource(), func() ([]byte, string, error) { return loadKeyEnv(s.KeyEnv) })
	case s.keyIs(sourceMemory):
	default:
		p.add(base, "no key: set key_file or key_env (or unencrypted: true with allow_unencrypted: true)")
		return
	}
	if s.key == nil {
		return // not loaded; reported
	}
	// RFC 8907 section 10.5.1 recommends shared secrets of at least 16 characters.
	if n := len(s.key.b); n < MinKeyLen && !s.AllowShortKey {
		p.add(field, "the key is %d bytes, shorter than %d (RFC 8907 section 10.5.1); use a longer key, or set allow_short_key: true", n, MinKeyLen)
	}
}

// loadKey loads a server's key from source unless it was already loaded from there, so that the key
// Agent hands out is the one checked; a failure is reported at field and leaves the server without a key.
func loadKey(p *problems, s *Server, field, source string, load func() ([]byte, string, error)) {
	if s.keyIs(source) {
		return
	}
	s.key = nil
	b, msg, err := load()
	if msg != "" || err != nil {
		p.addErr(field, err, "%s", msg)
		return
	}
	s.setKey(b, source)
}

var (
	envName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostName  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
	groupName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$`)
)

// normalizeAddress returns host:port, with DefaultPort when the address has none, or a message.
func normalizeAddress(raw string) (string, string) {
	if raw == "" {
		return "", "an address is required"
	}
	bad := fmt.Sprintf("%q is not host:port (IPv6 as [::1]:49)", raw)
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		// No port: a host alone, or an IPv6 address, bare or bracketed.
		host, port = raw, DefaultPort
		if strings.HasPrefix(raw, "[") && strings.HasSuffix(raw, "]") {
			host = raw[1 : len(raw)-1]
		}
		if strings.Contains(host, ":") {
			if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
				return "", bad
			}
		} else if host != raw {
			return "", bad // brackets around something that is not IPv6
		}
	}
	if msg := checkPort(port); msg != "" {
		return "", msg
	}
	if _, err := netip.ParseAddr(host); err != nil && !hostName.MatchString(host) {
		return "", fmt.Sprintf("%q is not an IP address or a host name", host)
	}
	return net.JoinHostPort(host, port), ""
}

func checkPort(port string) string {
	n, err := strconv.Atoi(port)
	switch {
	case err != nil:
		return fmt.Sprintf("port %q is not a number", port)
	case n < 1 || n > 65535:
		return fmt.Sprintf("port %d is out of range (1-65535)", n)
	}
	return ""
}

// count checks a count where zero means the default, a negative value is meaningless and max bounds what
// the daemon can hold.
func count(p *problems, path string, n *int, def, max int) {
	switch {
	case *n < 0:
		p.add(path, "must be positive")
	case *n == 0:
		*n = def
	case *n > max:
		p.add(path, "%d is more than the most accepted, %d", *n, max)
	}
}

// Upper bounds of counts: each entry costs memory or a goroutine, and a typo must not take the host down.
const (
	maxFailureKeys        = 10_000_000
	maxShare              = 1024 // the local API's conversation limit
	maxProxyClients       = 65536
	maxMetricsConnections = 65536
	// maxSpoolRecords bounds the spool's in-memory index (about 100 bytes per record).
	maxSpoolRecords = 10_000_000
	minSpoolBytes   = 64 << 10
)

// commandWord is one command name of log.secret_commands: a word without spaces or control characters.
var commandWord = regexp.MustCompile(`^[^\s\x00-\x1f\x7f]{1,64}$`)

// positive checks a duration where zero means the default and a negative value is meaningless.
func positive(p *problems, path string, d *time.Duration, def time.Duration) {
	switch {
	case *d < 0:
		p.add(path, "must be positive")
	case *d == 0:
		*d = def
	}
}

func (c *Config) checkGroups(p *problems) {
	seen := map[string]int{}
	for i, g := range c.Groups {
		base := index("groups", i)
		if g.Name == "" {
			p.add(base+".name", "a group needs a name")
		} else if j, dup := seen[g.Name]; dup {
			p.add(base+".name", "%q is already the name of groups[%d]", g.Name, j)
		} else {
			seen[g.Name] = i
		}
		if len(g.Servers) == 0 {
			p.add(base+".servers", "group %q has no servers", g.Name)
		}
		in := map[*Server]bool{}
		for j, m := range g.Servers {
			path := index(base+".servers", j)
			s := c.resolve(m)
			switch {
			case s == nil:
				p.add(path, "unknown server %q (servers: %s)", m, strings.Join(c.serverNames(), ", "))
			case in[s]:
				p.add(path, "server %q is listed twice in group %q", m, g.Name)
			}
			in[s] = true
		}
	}
}

// resolve returns the server a group member names, by name or by address; nil when none.
func (c *Config) resolve(member string) *Server {
	for i := range c.Servers {
		if c.Servers[i].Name == member {
			return &c.Servers[i]
		}
	}
	if a, msg := normalizeAddress(member); msg == "" {
		for i := range c.Servers {
			if c.Servers[i].Address == a {
				return &c.Servers[i]
			}
		}
	}
	return nil
}

func (c *Config) serverNames() []string {
	names := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		names[i] = s.Name
	}
	return names
}

func (c *Config) checkTimers(p *problems) {
	positive(p, "dead_time", &c.DeadTime, DefaultDeadTime)
	positive(p, "single_connect_hold_down", &c.SingleConnectHoldDown, DefaultSingleConnectHoldDown)
	positive(p, "max_connection_age", &c.MaxConnectionAge, DefaultMaxConnectionAge)
	positive(p, "backoff.initial", &c.Backoff.Initial, DefaultBackoffInitial)
	positive(p, "backoff.max", &c.Backoff.Max, DefaultBackoffMax)
	if c.Backoff.Initial > c.Backoff.Max {
		p.add("backoff.initial", "%s is longer than backoff.max (%s)", c.Backoff.Initial, c.Backoff.Max)
	}
	a := &c.Authentication
	positive(p, "authentication.user_timeout", &a.UserTimeout, DefaultUserTimeout)
	if a.FailureLimit.Max < 0 {
		p.add("authentication.failure_limit.max", "must not be negative (0 disables the limit)")
	}
	positive(p, "authentication.failure_limit.window", &a.FailureLimit.Window, DefaultFailureWindow)
	fl := &a.FailureLimit
	positive(p, "authentication.failure_limit.base_delay", &fl.BaseDelay, DefaultFailureBaseDelay)
	positive(p, "authentication.failure_limit.max_delay", &fl.MaxDelay, DefaultFailureMaxDelay)
	if fl.BaseDelay > fl.MaxDelay {
		p.add("authentication.failure_limit.base_delay", "%s is longer than failure_limit.max_delay (%s)", fl.BaseDelay, fl.MaxDelay)
	}
	count(p, "authentication.failure_limit.max_keys", &fl.MaxKeys, DefaultFailureMaxKeys, maxFailureKeys)
	if c.Authorization.Timeout < 0 {
		p.add("authorization.timeout", "must not be negative (0 leaves it to the servers' timeouts)")
	}
}

// checkAuthentication builds the stack once, with a stand-in authenticator, so that the policy's own
// rules (group names, local files, controls) are checked where the daemon will build it for real.
func (c *Config) checkAuthentication(p *problems) {
	if _, err := c.Authentication.Build(c.registry(checkOnly{})); err != nil {
		p.fromPolicy(err, "authentication", p.line("authentication.stack"))
	}
}

// registry is what the stack may refer to. Unnamed and repeated groups are left out: they are reported
// under groups, and the default stack must not report them again.
func (c *Config) registry(auth policy.Authenticator) policy.Registry {
	var groups []string
	for _, g := range c.GroupNames() {
		if g != "" && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return policy.Registry{Tacacs: auth, Groups: groups, Now: time.Now}
}

// checkOnly stands in for the agent while the stack is only being checked.
type checkOnly struct{}

func (checkOnly) Authenticate(context.Context, string, policy.Request, policy.Conversation) (policy.Reply, error) {
	return policy.Reply{}, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "stack built for validation only"}
}

// unixPathMax is the size of sun_path on Linux, including the terminating NUL.
const unixPathMax = 108

func (c *Config) checkAPI(p *problems) {
	a := &c.API
	switch {
	case !filepath.IsAbs(a.Socket):
		p.add("api.socket", "%q is not an absolute path", a.Socket)
	case len(a.Socket) >= unixPathMax:
		p.add("api.socket", "longer than %d bytes, the limit of a unix socket path", unixPathMax-1)
	}
	switch {
	case a.Mode&^0o777 != 0:
		p.add("api.mode", "%#o has bits beyond 0777", uint32(a.Mode))
	case a.Mode&0o002 != 0:
		p.add("api.mode", "%04o is world-writable: every local user could call the API (use e.g. 0660 with api.group)", uint32(a.Mode))
	}
	if a.Group != "" && !groupName.MatchString(a.Group) {
		p.add("api.group", "%q is not a group name", a.Group)
	}
	switch {
	case a.MaxRequestBytes < 0:
		p.add("api.max_request_bytes", "must be positive")
	case a.MaxRequestBytes == 0:
		a.MaxRequestBytes = DefaultMaxRequestBytes
	}
	count(p, "api.conversation_share", &a.ConversationShare, DefaultConversationShare, maxShare)
	count(p, "api.connection_share", &a.ConnectionShare, DefaultConnectionShare, maxShare)
}

// checkListen validates listen.tacacs: an IP:port on loopback (unless allowed), a local key under the rules
// of a server's key and different from every server's, and the limits.
func (c *Config) checkListen(p *problems) {
	l := &c.Listen.TACACS
	const base = "listen.tacacs"
	if l.Address == "" {
		l.key = nil
		return
	}
	host, port, err := net.SplitHostPort(l.Address)
	switch {
	case err != nil:
		p.add(base+".address", "%q is not IP:port (\"\" turns the front end off)", l.Address)
	default:
		if msg := checkPort(port); msg != "" {
			p.add(base+".address", "%s", msg)
		}
		ip, err := netip.ParseAddr(host)
		switch {
		case err != nil:
			p.add(base+".address", "%q is not an IP address (write 127.0.0.1 or ::1)", host)
		case !ip.IsLoopback() && !l.AllowNonLoopback:
			p.add(base+".address", "%s is not a loopback address: the front end serves local clients (set allow_nonloopback: true to serve other hosts, with their traffic in plain TACACS+)", host)
		}
	}
	field := base
	switch {
	case l.KeyFile != "" && l.KeyEnv != "":
		p.add(base+".key_env", "key_file is set too; want exactly one of key_file and key_env")
		return
	case l.KeyFile != "":
		field = base + ".key_file"
		if !filepath.IsAbs(l.KeyFile) {
			p.add(field, "must be an absolute path")
			l.key = nil
			break
		}
		b, msg, err := loadKeyFile(l.KeyFile, l.AllowInsecureKeyFile)
		if msg != "" || err != nil {
			p.addErr(field, err, "%s", msg)
			l.key = nil
			break
		}
		l.key = &secret{b: b, source: keySource("key_file", l.KeyFile)}
	case l.KeyEnv != "":
		field = base + ".key_env"
		b, msg, err := loadKeyEnv(l.KeyEnv)
		if msg != "" || err != nil {
			p.addErr(field, err, "%s", msg)
			l.key = nil
			break
		}
		l.key = &secret{b: b, source: keySource("key_env", l.KeyEnv)}
	default:
		p.add(base, "no local key: set key_file or key_env (the front end does not serve unobfuscated TACACS+)")
	}
	if l.key != nil {
		if n := len(l.key.b); n < MinKeyLen && !l.AllowShortKey {
			p.add(field, "the key is %d bytes, shorter than %d (RFC 8907 section 10.5.1); use a longer key, or set allow_short_key: true", n, MinKeyLen)
		}
		for i := range c.Servers {
			if s := &c.Servers[i]; s.key != nil && s.key.equal(l.key) {
				p.add(field, "the local key is the key of server %s: local clients must not hold a server's secret; use a key of its own", s.Name)
			}
		}
	}
	count(p, base+".max_clients", &l.MaxClients, agentconfig.DefaultProxyMaxClients, maxProxyClients)
	count(p, base+".connection_share", &l.ConnectionShare, agentconfig.DefaultProxyConnectionShare, maxShare)
	count(p, base+".session_share", &l.SessionShare, agentconfig.DefaultProxySessionShare, maxShare)
	count(p, base+".max_sessions_per_client", &l.MaxSessionsPerClient, agentconfig.DefaultProxyMaxSessionsPerClient, maxShare)
	positive(p, base+".idle_timeout", &l.IdleTimeout, agentconfig.DefaultProxyIdleTimeout)
	positive(p, base+".write_timeout", &l.WriteTimeout, agentconfig.DefaultProxyWriteTimeout)
	positive(p, base+".conversation_timeout", &l.ConversationTimeout, agentconfig.DefaultProxyConversationTimeout)
	positive(p, base+".request_timeout", &l.RequestTimeout, agentconfig.DefaultProxyRequestTimeout)
}
