// Package proxy is the loopback TACACS+ front end (`listen.tacacs`): existing RFC 8907 clients
// (pam_tacplus, bash_tacplus, audisp-tacplus, tacquito's client, vendor tools) connect to it on
// 127.0.0.1 with a local key, and each of their sessions is forwarded through the agent's server choice,
// multiplexed connections, failover and TLS.
//
// One goroutine at a time reads a client connection: it decodes the packets with the local key and routes
// them by the client's session_id. The goroutine that reads a START runs that session itself and a new one
// takes over the reading, so each client session has its own goroutine, which calls the Backend (the agent's Go API: a new session_id upstream, chosen by the agent) and writes the reply,
// obfuscated with the local key under the client's session_id and seq_no. Authentication prompts travel
// as REPLY/CONTINUE pairs; accounting is acknowledged SUCCESS only once the Backend says the record is
// durable (the daemon's spool) or taken by a server.
//
// A bad client affects only itself: every read and write has a deadline, buffers are bounded by the
// codec's body limit, sessions per connection and connections and sessions per uid are capped, and any
// packet that does not decode or does not fit its session closes that client's connection (counted in
// tacagent_proxy_bad_packets_total by reason, logged without its content).
//
// It imports the codec, the agent's public API (types and errors), localapi (the shared failure rate
// limit) and metrics; never the actor packages, the policy, the daemon or the CLI.
package proxy
