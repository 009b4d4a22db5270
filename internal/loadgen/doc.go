// Package loadgen is the engine of `tacagent bench`: it drives PAP logins from concurrent callers through
// one client at a time (the agent's Go API with single-connect, the same with one connection per session,
// the daemon's local API, tacquito's client library, a fleet of agents), against embedded test servers or
// real ones, and measures what each run cost: throughput, latency percentiles, client CPU per
// authentication (getrusage of this process), errors by class, and the connections the servers accepted.
//
// The embedded servers (Cluster) are the project's tacplus/tacplustest servers, run in a child process by
// default so that this process's CPU time is the client's alone.
//
// It imports the agent, the daemon and the local API client; nothing in the agent imports it.
package loadgen
