// Package session is the session: one per TACACS+ session, a child of the connection actor that carries
// it. It drives one pure state machine from fsm (start -> continue* -> complete): it turns packets, user
// input, timer expiries, ConnectionLost and aborts into fsm events, and carries out the machine's effects
// (send a packet through its connection, prompt the caller, complete).
//
// A Session runs inside a session actor, a protoactor child of the connection actor that carries it
// (actors/connection, hosted.go): the session actor owns the Session, calls Receive for each of its
// messages, one at a time, and is the Session's Host, turning what the session hands its connection
// (packets, its end, its timer) into messages to the parent. Session actors run on a synchronized
// dispatcher, so a message from the connection runs on the connection's goroutine without a goroutine
// per mailbox run, and are reused: a connection hands its next session to an idle one
// (docs/architecture.md, "Session actors").
//
// Guarantees:
//   - every session answers its caller exactly once with an Outcome, even when it is stopped before it
//     completes: Stop answers with ErrConnectionLost;
//   - its one timer is the host's, tagged with a generation, so a stale expiry is ignored;
//   - an idle session owns no goroutine and no timer of its own.
//
// It imports fsm, messages, metrics and protoactor (for PIDs); never the connection or supervisor packages.
package session
