// Package daemon assembles a running tacagent: the Go API (agent), the authentication stack (policy), the
// local API socket (localapi) and the HTTP endpoints (/metrics, /healthz, /readyz). It owns reload and
// drain.
//
// Reload swaps an immutable runtime (agent + stack) atomically: requests already running keep the runtime
// they started on, so no session in flight is dropped; the old agent is drained in the background. When
// no server changed, the agent is kept and only the stack and settings are swapped.
//
// It imports everything below it; nothing imports it but cmd/tacagent.
package daemon
