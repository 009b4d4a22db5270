// Package agentconfig holds the public configuration types of the agent (agent.Config, agent.Server,
// agent.Group are aliases of these) and their defaults, so that the config package can build an agent's
// configuration without importing the actor packages.
//
// It imports the standard library only. The agent package checks in a test that these defaults are the
// ones its actors apply.
package agentconfig
