// Command tacquito-server runs tacquito's TACACS+ server (github.com/facebookincubator/tacquito, through
// internal/tacquitoserver) as its own process, so that the chaos suite can SIGKILL and restart a real,
// independent server mid-session.
//
// It listens on a loopback address, prints the bound address ("127.0.0.1:port") as the first line on
// stdout once it accepts connections (the readiness signal), writes each accounting record as one JSON
// line to -acct-log with one write(2) before tacquito replies (so that a record a client saw acknowledged
// survives a SIGKILL), and exits 0 on SIGTERM or SIGINT after closing every connection. The shared key
// comes from -key-file; it is never printed.
//
// Usage:
//
//	tacquito-server -key-file key -users users.json -acct-log acct.jsonl [-listen 127.0.0.1:0]
//
// The -users file is a JSON list of accounts:
//
//	[{"name": "alice", "password": "alice-pw", "priv_lvl": 15, "permit": ["show"], "deny": ["reload"]}]
//
// It imports internal/tacquitoserver and the standard library only: it is a test peer, never part of the
// agent.
package main
