// Package audisp is `tacagent audisp`, an auditd plugin: it reads audit records on stdin in auditd's
// string format, groups them into events, and turns the execve and exit of processes in TACACS+ sessions
// (sessions the daemon opened through PAM, known by the kernel's auid and session id) into accounting
// START and STOP records sent through the local API (docs/audit.md).
//
// The parts, each usable alone:
//   - ParseLine: one record line to a Record (type, event id, fields; hex and quoted values, the
//     ENRICHED part after 0x1D). Pure, no allocation beyond the Record; never panics.
//   - Assembler: records to events by event id, ended by EOE or by a timeout on an injected clock.
//   - Interpret: an event to a Fact (exec, exit, abnormal end, session change).
//   - Tracker: facts and session answers to accounting records (task ids, RFC 8907 limits, masking). Pure.
//   - Plugin: the process: a reader that never blocks auditd, a bounded queue, a sender to the agent.
//
// It imports localapi (the client), tacplus (AV pair helpers, the error taxonomy), internal/secfile (its
// configuration file), zerolog and yaml; it must not import the daemon, the agent or the actors: it is a
// thin forwarder in its own process. Only its end-to-end tests start a daemon.
package audisp
