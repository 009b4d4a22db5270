// Package fsm holds the pure TACACS+ session state machines of the client: authentication (RFC 8907
// section 5), authorization (section 6) and accounting (section 7). One machine drives one session.
//
// A machine maps (state, event) to (state, effects), in the manner of etcd-io/raft: the caller feeds it
// Events (Start, a packet received, user input, a timeout, the connection lost, an abort) through Step,
// and carries out the Effects it returns (send a packet, prompt the user, complete with a typed result).
// A machine never does I/O, never reads a clock and never draws random numbers: session ids, CHAP
// identifiers and challenges are inputs, and timers belong to the caller, who reports their expiry as an
// EventTimeout. Wait tells the caller whose turn it is, so that it knows which timer to arm.
//
// The machine owns the sequence numbers (section 4.1: the client sends odd numbers and expects the
// server's even ones, and a session ends before seq_no would reach 255) and the header fields it knows:
// session_id, seq_no, type and the version byte fixed by the START (section 5.4.1). It validates every
// packet it is given: a wrong session_id, seq_no, packet type, body type or version ends the session with
// tacplus.ErrProtocol. The connection that carries the session adds the single-connect flag and
// obfuscates; the machine knows nothing of either.
//
// Allocation: Step returns effects in a small array inside the machine (valid until the next Step), so a
// step allocates nothing but the bodies of the packets it sends and, on completion, its error value (and
// an authorization's result pairs).
// Reset lets a caller reuse a machine.
//
// Errors: every completion error is a *tacplus.Error of the project taxonomy (tacplus/errors.go) with
// SessionID and State set; the caller fills Server. An event the machine cannot take in its state (input
// while no prompt is pending, anything after completion) is refused by Step with an error that matches
// ErrUnexpectedEvent or ErrFinished, and leaves the machine unchanged.
//
// Decisions the RFC leaves to the client:
//   - RESTART (section 5.4.3) completes the session with Status RESTART and an ErrAuthenticationFailed
//     error, which is what a client that does not restart must do. A caller that restarts makes a new
//     machine with a new session_id, and possibly another authen_type; it should bound the restarts.
//   - FOLLOW is treated as FAIL (authentication, authorization) or as ERROR (accounting: the record was
//     not taken and may go to another server).
//   - An abort while a prompt is pending sends a CONTINUE with the ABORT flag (section 5.4.3). An abort
//     while the server holds the turn sends nothing, since a CONTINUE out of turn would break the seq_no
//     alternation (section 4.1): the session completes with ErrAborted and the caller drops it. A timeout
//     while a prompt is pending aborts the same way. Authorization and accounting have no abort packet.
//   - A prompt that would make the client's answer reach seq_no 255 ends the session with ErrProtocol.
//   - An ERROR reply is accepted at either minor version; any other reply must carry the session's.
//
// This package imports only the standard library, tacplus and golang.org/x/crypto/md4 (for MS-CHAP). It
// must not import any actor, logging, metrics or configuration package, and it keeps no global state.
package fsm
