package proxy

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults of Config (named in agentconfig, which the configuration package reads).
const (
	DefaultMaxClients           = agentconfig.DefaultProxyMaxClients
	DefaultConnectionShare      = agentconfig.DefaultProxyConnectionShare
	DefaultSessionShare         = agentconfig.DefaultProxySessionShare
	DefaultMaxSessionsPerClient = agentconfig.DefaultProxyMaxSessionsPerClient
	DefaultIdleTimeout          = agentconfig.DefaultProxyIdleTimeout
	DefaultWriteTimeout         = agentconfig.DefaultProxyWriteTimeout
	DefaultConversationTimeout  = agentconfig.DefaultProxyConversationTimeout
	DefaultRequestTimeout       = agentconfig.DefaultProxyRequestTimeout
	DefaultMaxBody              = agentconfig.DefaultProxyMaxBody
)

// Backend carries out the client sessions: the daemon (its current agent, groups and spool), or an agent
// directly (AgentBackend).
type Backend interface {
	// Authenticate runs one authentication; prompts go through conv.
	Authenticate(ctx context.Context, req agent.AuthenRequest, conv agent.Conversation) (*agent.AuthenReply, error)
	Authorize(ctx context.Context, req agent.AuthorRequest) (*agent.AuthorReply, error)
	// Account returns nil only once the record is durable (spooled) or a server answered SUCCESS; the
	// string is a message for the client (the server's, or empty).
	Account(ctx context.Context, req agent.AcctRequest) (string, error)
}

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// Key is the local key shared with the clients (RFC 8907 section 4.5). Required: the front end does
	// not serve unobfuscated TACACS+.
	Key []byte
	// AllowNonLoopback accepts clients from addresses other than loopback (127.0.0.0/8, ::1).
	AllowNonLoopback bool
	// MaxClients caps the open client connections; one more is closed at accept.
	MaxClients int
	// ConnectionShare and SessionShare bound one uid other than root (or one non-loopback peer): open
	// connections and sessions in progress.
	ConnectionShare int
	SessionShare    int
	// MaxSessionsPerClient caps the sessions in progress on one connection (single-connect clients).
	MaxSessionsPerClient int
	// IdleTimeout bounds the wait for a client's next packet while none of its sessions is in progress:
	// a connection that sends nothing (or half a packet) for that long is closed. While a session runs,
	// its own timeouts bound the connection (ConversationTimeout, RequestTimeout, the servers').
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to a client: a client that does not read is closed.
	WriteTimeout time.Duration
	// ConversationTimeout bounds the wait for a client's CONTINUE after a prompt.
	ConversationTimeout time.Duration
	// RequestTimeout bounds one authorization or accounting request (the agent's servers answer or fail
	// over within it).
	RequestTimeout time.Duration
	// MaxBody is the largest packet body accepted from a client.
	MaxBody uint32
	// Limiter is the failure rate limit of authentications (the local API's, shared); nil: none.
	Limiter *localapi.Limiter
	Backend Backend
	Log     zerolog.Logger
	Metrics *metrics.Metrics // nil: private collectors, not registered
	// owner looks up the uid owning a loopback client's socket; nil: the /proc/net/tcp lookup.
	owner func(client, server string) (uint32, error)
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxClients, DefaultMaxClients)
	def(&c.ConnectionShare, DefaultConnectionShare)
	def(&c.SessionShare, DefaultSessionShare)
	def(&c.MaxSessionsPerClient, DefaultMaxSessionsPerClient)
	dur(&c.IdleTimeout, DefaultIdleTimeout)
	dur(&c.WriteTimeout, DefaultWriteTimeout)
	dur(&c.ConversationTimeout, DefaultConversationTimeout)
	dur(&c.RequestTimeout, DefaultRequestTimeout)
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.owner == nil {
		c.owner = socketOwner
	}
	return c
}

// AgentBackend serves clients from one agent: authentication on the default group, authorization and
// accounting on the groups named ("" = default). Accounting is not spooled: SUCCESS means a server took
// the record.
func AgentBackend(a *agent.Agent, authorGroup, acctGroup string) Backend {
	return agentBackend{a: a, author: authorGroup, acct: acctGroup}
}

type agentBackend struct {
	a            *agent.Agent
	author, acct string
}

func (b agentBackend) Authenticate(ctx context.Context, req agent.AuthenRequest, conv agent.Conversation) (*agent.AuthenReply, error) {
	return b.a.Authenticate(ctx, req, conv)
}

func (b agentBackend) Authorize(ctx context.Context, req agent.AuthorRequest) (*agent.AuthorReply, error) {
	return b.a.Authorize(ctx, req, agent.InGroup(b.author))
}

func (b agentBackend) Account(ctx context.Context, req agent.AcctRequest) (string, error) {
	r, err := b.a.Account(ctx, req, agent.InGroup(b.acct))
	if r == nil {
		return "", err
	}
	return r.ServerMsg, err
}

// errConfig is a configuration error of this package.
func errConfig(msg string) error {
	return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "tacacs front end: " + msg}
}
