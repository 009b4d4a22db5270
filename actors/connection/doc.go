// Package connection is the connection actor: it owns one TCP (later TLS) socket to one TACACS+ server,
// with one reader goroutine and one coalescing writer goroutine, and it routes every received packet by
// session_id to a child session actor.
//
// Rules it enforces:
//   - RFC 8907 section 4.3: the first packet asks for single-connect; no second packet goes out before the
//     server's first reply says whether it agreed. Without agreement the socket serves one session and the
//     requests queued behind it go back to the supervisor (one connection per session).
//   - Section 4.4: after a key mismatch no new session goes on the connection; running ones may finish,
//     then it closes.
//   - Everything from the socket's goroutines carries the connection epoch; messages from an older socket
//     are dropped.
//   - A server closing an idle connection is not a failure: the actor closes quietly and dials again on
//     the next request. A connection that dies while sessions are in flight tells every session
//     (ConnectionLost), waits until all have ended, then fails, so that the supervisor restarts it with
//     backoff (../../shared/PROTOACTOR.md pitfall 1: a restart stops children before queued messages).
//
// It imports the codec, messages, metrics and protoactor; never the supervisor or the policy.
package connection
