package main

// longHelp is each command's description in `tacagent COMMAND --help` and in tacagent-COMMAND(8);
// docs/cli.md has the full story. A command without an entry shows its summary.
var longHelp = map[string]string{
	"run": `The daemon. It validates the configuration file (tacagent.yaml(5); every problem is reported with its line and field, exit 78), connects to the servers, serves the local API on the configured socket and /metrics, /healthz and /readyz on metrics.address.

SIGHUP reloads the file: a bad file is refused and logged, and the running configuration stays; sessions in flight finish on the configuration they started with. SIGTERM or SIGINT stops taking requests, lets the ones in flight finish (at most 10 s), and exits 0.`,
	"demo": `Starts tacquito's TACACS+ server in-process on 127.0.0.1, runs the daemon against it with a temporary socket and a random key, and drives an ASCII login, a failing PAP login, authorizations (permitted and denied) and accounting START/STOP through the local API. Exit 0 when every step behaved as expected. --serve keeps it running until Ctrl-C, so that the printed curl lines can be tried.`,
	"login": `An interactive login through the agent. With ascii (the default) the server drives the prompts; answers the server marks NOECHO are read without echo. For PAP, CHAP and MS-CHAP the CLI asks for the user (without --user) and the password. When stdin is not a terminal, each prompt's answer is one line of stdin.

Exit 0 when the login passed, 1 when the server said FAIL, 2 when no answer could be had.`,
	"authorize": `Asks whether the user may run CMD ARG... (service=shell cmd=CMD cmd-arg=ARG...). With no CMD it authorizes the shell start (the empty command), where servers return priv-lvl. -v prints the AV pairs the server returned.

Exit 0 permit, 1 deny, 2 error.`,
	"account": `Sends one accounting record: start, stop, watchdog or update. --attr adds AV pairs; the words after the record type (or after --) are sent as cmd=. The record is retried on the next server of the accounting group until one acknowledges it; with the daemon's spool on, a record no server took yet is kept on disk and sent later (exit 0, "spooled").`,
	"status":  `One line per server: name, address, groups, state (up, down, dead) and since when, single-connect, requests in flight and queued, transport; then dead-time, TLS details and the last error of each server that has them. --json prints the API's status body.`,
	"bench":   `Measures logins per second, latency percentiles (p50, p90, p99, max) and client CPU per login of each client mode in one run: the Go API over one multiplexed connection (single-connect) and with one connection per session, the daemon's local API, a fleet of agents (server connections per 1,000 logins), and tacquito's client as the baseline. By default against two embedded test servers in a child process; --server with --key-file, --user and --password-file against real ones; --socket against a running daemon. --json for machines, --plot FILE.png for latency over time with failures marked. Exit 0 when every login passed, 2 otherwise.`,
	"audisp":  `Runs as an auditd plugin (/etc/audit/plugins.d/tacagent.conf: args = audisp, format = string). It reads audit records on stdin and sends an accounting START at each execve and a STOP at each exit of the processes of TACACS+ sessions. auditd starts it with an empty environment, so it uses the default socket; --socket=PATH (one word) names another. It never stops reading while the agent is unreachable: a bounded queue, then counted drops. SIGTERM or the end of stdin stops it. Exit 0, 78 for a bad configuration.`,
}
