// Package metrics defines every Prometheus collector tacagent exports (docs/operations.md), registered on
// an injected prometheus.Registerer: there are no package-global collectors, so tests and embedders can run
// several agents in one process.
//
// Names carry the tacagent_ prefix. The server label is the server's "host:port" address, never a key or
// anything derived from one. Per-server children are resolved once (Server) so that the per-packet path
// does no label lookups.
//
// It must not import the actor, codec or policy packages: callers translate their events into these calls.
package metrics
