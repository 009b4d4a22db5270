// Package session is the session actor: one per TACACS+ session, a child of the connection actor that
// carries it. It drives one pure state machine from fsm (start -> continue* -> complete): it turns
// packets, user input, timer expiries, ConnectionLost and aborts into fsm events, and carries out the
// machine's effects (send a packet through the parent connection, prompt the caller, complete).
//
// Guarantees:
//   - every session answers its caller exactly once with an Outcome, even when it is stopped before it
//     completes (../../shared/PROTOACTOR.md pitfall 1): a stop answers with ErrConnectionLost;
//   - timeouts use the scheduler with a generation tag, never SetReceiveTimeout (pitfall 2);
//   - an idle session owns no goroutine: it is a mailbox and a pending timer.
//
// It imports fsm, messages, metrics and protoactor; never the connection or supervisor packages.
package session
