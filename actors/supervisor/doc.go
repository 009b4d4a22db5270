// Package supervisor is the supervisor actor: it owns the server list, the server groups, dead-time, the
// choice of server for each request, failover, and the restart of failed connection actors with capped
// exponential backoff.
//
// Retry rules (docs/policy.md, the network-gear method-list rule):
//   - a FAIL (authentication failed, authorization denied) stops: the answer goes to the caller;
//   - no response (unreachable, timeout, a connection lost before any reply), ERROR and a bad secret move the
//     request to the next server of its group;
//   - a connection lost before any reply is first retried once on the same server, on a fresh connection:
//     that is the race of a server closing an idle connection as a request goes out, and it must never fail
//     a login;
//   - once a session has shown the user a prompt it is never retried: the conversation cannot be replayed.
//
// A dead server is skipped for dead-time, and is used again only after dead-time has passed and its
// connection actor, restarted with backoff in the background, has connected again: no login pays to
// discover a recovery.
//
// It imports the connection actor, messages, metrics and the codec; never the policy or the API.
package supervisor
