package agent

import (
	"testing"
	"time"

	"github.com/tacagent/tacagent/actors/connection"
	"github.com/tacagent/tacagent/actors/supervisor"
	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/tacplus"
)

// The public defaults (agentconfig, which the config package and its docs use) are the ones the actors
// apply to a zero field.
func TestPublicDefaultsAreTheActorsDefaults(t *testing.T) {
	for _, c := range []struct {
		name      string
		pub, real time.Duration
	}{
		{"Timeout", agentconfig.DefaultTimeout, supervisor.DefaultTimeout},
		{"DialTimeout", agentconfig.DefaultDialTimeout, connection.DefaultDialTimeout},
		{"IdleTimeout", agentconfig.DefaultIdleTimeout, connection.DefaultIdleTimeout},
		{"DeadTime", agentconfig.DefaultDeadTime, supervisor.DefaultDeadTime},
		{"BackoffInitial", agentconfig.DefaultBackoffInitial, supervisor.DefaultBackoffInitial},
		{"BackoffMax", agentconfig.DefaultBackoffMax, supervisor.DefaultBackoffMax},
		{"HoldDown", agentconfig.DefaultHoldDown, supervisor.DefaultHoldDown},
		{"MaxAge", agentconfig.DefaultMaxAge, supervisor.DefaultMaxConnectionAge},
	} {
		if c.pub != c.real {
			t.Errorf("agentconfig.Default%s = %v, the actors apply %v", c.name, c.pub, c.real)
		}
	}
	if agentconfig.DefaultMaxInFlight != connection.DefaultMaxInFlight {
		t.Errorf("agentconfig.DefaultMaxInFlight = %d, the connection applies %d", agentconfig.DefaultMaxInFlight, connection.DefaultMaxInFlight)
	}
	if agentconfig.DefaultMaxBodyLen != tacplus.DefaultMaxBodyLen {
		t.Errorf("agentconfig.DefaultMaxBodyLen = %d, the codec applies %d", agentconfig.DefaultMaxBodyLen, tacplus.DefaultMaxBodyLen)
	}
}
