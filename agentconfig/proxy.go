package agentconfig

import "time"

// Defaults of the loopback TACACS+ front end (package proxy, YAML listen.tacacs), named here so that the
// configuration package can use them without importing the front end (which imports the agent).
const (
	DefaultProxyMaxClients           = 256
	DefaultProxyConnectionShare      = 32 // per uid other than root, as the local API's connection share
	DefaultProxySessionShare         = 64 // per uid other than root, as the local API's conversation share
	DefaultProxyMaxSessionsPerClient = 64
	DefaultProxyIdleTimeout          = 60 * time.Second
	DefaultProxyWriteTimeout         = 5 * time.Second
	DefaultProxyConversationTimeout  = 60 * time.Second
	DefaultProxyRequestTimeout       = 30 * time.Second
	DefaultProxyMaxBody              = 16 << 10
)
