// Package session is the session: one per TACACS+ session, a child of the connection actor that carries
// it. It drives one pure state machine from fsm (start -> continue* -> complete): it turns packets, user
// input, timer expiries, ConnectionLost and aborts into fsm events, and carries out the machine's effects
// (send a packet through its connection, prompt the caller, complete).
//
// A Session is an actor that shares its connection's mailbox and goroutine (Host): the connection calls
// Receive for each of its messages, one at a time, so a session costs no spawn, no goroutine and no
// mailbox hop (docs/architecture.md, "Sessions share their connection's goroutine").
//
// Guarantees:
//   - every session answers its caller exactly once with an Outcome, even when it is stopped before it
//     completes: Stop answers with ErrConnectionLost;
//   - its one timer is the host's, tagged with a generation, so a stale expiry is ignored;
//   - an idle session owns no goroutine and no timer of its own.
//
// It imports fsm, messages, metrics and protoactor (for PIDs); never the connection or supervisor packages.
package session
