package config

import (
	"os/exec"
	"strings"
	"testing"
)

// config builds the agent's configuration from agentconfig's types: neither it nor anything it imports
// may pull in the actor system (public packages have their own types).
func TestNoActorImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "/actors/") || strings.Contains(p, "protoactor") || strings.HasSuffix(p, "/messages") ||
			strings.HasSuffix(p, "tacagent/agent") || strings.HasSuffix(p, "tacagent/daemon") {
			t.Errorf("config depends on %s", p)
		}
	}
}
