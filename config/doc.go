// Package config is tacagent's daemon configuration: the YAML file, decoded strictly, validated in one
// place, and mapped onto the agent's Go configuration (agent.Config) and the authentication stack
// (policy.Config).
//
// Parse and Load decode the file: an unknown field, a duration without a unit or a value of the wrong type
// is an error. Validate checks every rule (addresses, key sources, groups, the stack, the local API) and
// reports every problem at once, each as a *FieldError naming the file, the line and the field path:
//
//	tacagent.yaml:12: servers[1].timeout: "5" has no unit (use e.g. 5s)
//
// Shared secrets come only from a key file or an environment variable. They are read by Validate, held
// behind an unexported pointer, copied into agent.Config by Agent, and never appear in an error, a String
// or a %v/%+v/%#v rendering of a Config.
//
// Diff compares two configurations for a SIGHUP reload. Default builds the in-memory configuration of
// `tacagent demo`.
//
// It imports agentconfig (the agent's configuration types: agent.Config is agentconfig.Config), policy,
// tacplus, tlsconf and internal/secfile, and localapi and metrics for their defaults. It must not import
// the agent, the actor packages, the daemon or the CLI, directly or not (TestNoActorImports runs
// `go list -deps`), and it does no logging.
package config
