// Package agent is the Go API of tacagent: an embeddable TACACS+ client that multiplexes sessions over
// persistent connections, fails over between servers and survives their deaths. The daemon is built on it,
// and Go programs can use it directly.
//
//	a, err := agent.New(cfg, agent.WithLogger(log), agent.WithRegisterer(reg))
//	res, err := a.Authenticate(ctx, agent.AuthenRequest{User: "alice", Type: tacplus.AuthenTypePAP, Password: []byte(pw)}, nil)
//	...
//	a.Close(ctx)
//
// Every error is a *tacplus.Error of the taxonomy in docs/architecture.md, carrying the server, the
// session_id and the state the session was in. Context cancellation aborts the session (an ABORT packet
// where RFC 8907 allows one).
//
// Its configuration types (Config, Server, Group, TLSState) are aliases of package agentconfig's, which
// imports no actor package, so that configuration code can build them without the actor system.
//
// It imports agentconfig, the actors, messages, metrics and the codec; never the policy, the daemon or
// the CLI.
package agent
