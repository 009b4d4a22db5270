// Package chaos is tacagent's chaos suite: it runs the agent (the daemon as a real process, and the Go API
// in the test process) against TACACS+ servers that are separate processes, kills and restarts them
// mid-session, cuts, slows, slices and blackholes the connections in between with Toxiproxy, and proves
// after every scenario that nothing hung, leaked or was silently lost. docs/chaos.md lists the scenarios
// and how to run them.
//
// The non-test files hold the reusable parts, each free of testing and of the agent's internals:
//   - Proc: a child process in its own process group, killed with the group (proc.go);
//   - Network and Link: Toxiproxy as a library, one proxy per server, toxics by name (network.go);
//   - Ledger: what every caller saw, reconciled with the servers' accounting logs (ledger.go);
//   - Summary: latency percentiles and the summary table (summary.go);
//   - Scrape: Prometheus text parsing, to compare the agent's metrics with the ledger (scrape.go).
//
// The scenarios themselves are tests: the rig (rig_test.go), the invariants (checks_test.go), one test per
// scenario (scenarios_test.go), the soak (soak_test.go) and regression tests for the bugs the suite found
// (repro_test.go). Helper binaries live under chaos/cmd.
//
// It may import the agent's public packages (agent, localapi, tacplus, metrics) and test peers; nothing in
// the project may import it.
package chaos
