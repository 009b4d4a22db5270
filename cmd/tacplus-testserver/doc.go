// Command tacplus-testserver runs the project's TACACS+ test server (package tacplustest) as its own
// process, so that a test can kill a real server (SIGKILL) and check what survived.
//
// It listens on a loopback address, prints the bound address ("127.0.0.1:port") as the first line on
// stdout once it accepts connections (the readiness signal), writes each accounting record as one JSON
// line to -acct-log before acknowledging it, and exits 0 on SIGTERM or SIGINT after closing every
// connection. The shared key comes from -key-file or from the environment variable named by -key-env; it is
// never printed.
//
// Usage:
//
//	TACPLUS_TESTSERVER_KEY=secret tacplus-testserver -config users.yaml -acct-log acct.jsonl -single-connect
//
// The -config file is YAML (JSON works too):
//
//	users:
//	  alice: {password: alice-pw, enable_password: en, delay: 20ms, groups: [ops],
//	          prompts: [{message: "OTP code: ", answer: "123456"}]}
//	author_rules:
//	  - {user: alice, service: shell, command: "show .*", permit: true, args: [priv-lvl=15]}
//	  - {group: ops, command: ".*", permit: false, server_msg: denied}
//	single_connect: true
//	keep_open: false
//	idle_timeout: 15s
//	faults: {delay: 5ms, drop_replies: 0, error_replies: 0}
//
// Faults (tacplustest.Faults; a count is how many replies get it, -1 every reply): user (limit to one
// user), delay, drop_replies (-1: accept TCP and never answer), close_mid_session, truncate, garbage,
// error_replies, wrong_key, wrong_seq (a seq_no that skips one), wrong_session (nobody's session_id),
// cross_session (the session_id of another live session on the same connection: misrouting),
// close_after_reply, prompt_forever (GETDATA loop), fail_delay (hold back FAIL replies). The flags
// -fault-drop-replies, -fault-wrong-session, -fault-cross-session, -fault-wrong-seq,
// -fault-close-after-reply, -fault-error-replies, -fault-prompt-forever, -fault-fail-delay and -fault-delay
// set the same.
//
// Flags given on the command line override the file.
//
// TACACS+ over TLS 1.3 (RFC 9887): -tls-cert and -tls-key serve TLS only (no obfuscation, the UNENCRYPTED
// flag required); the files are read at every handshake, so a rotation is a rename into place.
// -tls-client-ca requires a client certificate from that bundle; -tls12-only is the fault of a server that
// speaks TLS 1.2 at most. The shared key is still read (the server's codec wants one) but not used on TLS.
//
// It imports only tacplustest, yaml.v3 and the standard library: it is a test peer, never part of the agent.
package main
