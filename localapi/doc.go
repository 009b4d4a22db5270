// Package localapi is tacagent's local API: the HTTP/1.1 + JSON protocol served on a unix socket to the
// PAM module, the CLI, the bash hook and the audit plugin, and the Go Client that speaks it. docs/api.md is
// the protocol's reference.
//
// The Server checks every caller's SO_PEERCRED credentials (root, or a member of one configured group),
// limits failed authentications per user, carries multi-step authentication conversations across
// requests, and maps the project's error taxonomy (tacplus/errors.go) to stable codes; the Client maps
// them back, so errors.Is(err, tacplus.ErrAuthenticationFailed) works on both sides of the socket.
//
// The daemon plugs in through the Backend interface. This package imports the codec (for the taxonomy),
// the policy (for its denials), metrics, zerolog and x/sys/unix (peer credentials); it must not import the
// agent, the actors or the daemon (only its tests use the agent, to prove the protocol end to end).
package localapi
