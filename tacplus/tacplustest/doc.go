// Package tacplustest is the project's own TACACS+ server (RFC 8907), for tests and benchmarks.
//
// Real servers cannot be made to misbehave on demand; this one can. It serves every authentication type
// (ASCII login with extra GETDATA prompts such as a one-time code, ENABLE, CHPASS, PAP, CHAP, MS-CHAPv1,
// MS-CHAPv2, each verified independently of the client code), per-command authorization rules that return
// AV pairs, and an accounting sink that keeps every record so a test can prove nothing was lost. It agrees
// to or refuses single-connect (section 4.3), answers interleaved sessions out of order when users have
// different reply delays, closes idle connections, and injects faults that can be changed while it runs:
// dropped, delayed, garbled, truncated or mis-addressed replies, replies under the wrong key or with the
// UNENCRYPTED flag toggled, ERROR replies, RESTART, and connections closed mid-session.
//
// It is also the fast throughput peer: a packet from a user without a delay is answered inline by the
// connection's reader goroutine, and replies that are ready together go out in one Write.
//
// Start listens on loopback only and returns once it accepts connections; Close closes the listener and
// every connection and waits for every goroutine the server started.
//
// It imports the codec (tacplus), the standard library and golang.org/x/crypto/md4. It must not import the
// fsm, actors, policy, metrics or logging packages: it is an independent check of the client code.
package tacplustest
