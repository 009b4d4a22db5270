package config

import (
	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/policy"
)

// Agent validates c and maps it onto the agent's configuration (agent.Config is agentconfig.Config). Each server gets a copy of its key;
// groups name servers by their normalized address, the supervisor's identity for a server. With no groups
// configured, the result has one group, DefaultGroup, of every server in order.
func (c *Config) Agent() (agentconfig.Config, error) {
	if err := c.Validate(); err != nil {
		return agentconfig.Config{}, err
	}
	out := agentconfig.Config{
		DeadTime:              c.DeadTime,
		SingleConnectHoldDown: c.SingleConnectHoldDown,
		MaxConnectionAge:      c.MaxConnectionAge,
		BackoffInitial:        c.Backoff.Initial,
		BackoffMax:            c.Backoff.Max,
		UserTimeout:           c.Authentication.UserTimeout,
	}
	for _, s := range c.Servers {
		as := agentconfig.Server{
			Addr:                 s.Address,
			Name:                 s.Name,
			Unencrypted:          s.Unencrypted,
			AllowUnencrypted:     s.AllowUnencrypted,
			Timeout:              s.Timeout,
			DialTimeout:          s.ConnectTimeout,
			IdleTimeout:          s.IdleTimeout,
			NoSingleConnect:      !s.SingleConnect,
			MaxInFlight:          s.MaxInFlight,
			ConnectionsPerServer: s.ConnectionsPerServer,
			SourceAddr:           s.SourceAddress,
			MaxBodyLen:           s.MaxBody,
		}
		if s.key != nil {
			as.Key = append([]byte(nil), s.key.b...)
		}
		if err := s.applyTLS(&as); err != nil {
			return agentconfig.Config{}, err
		}
		out.Servers = append(out.Servers, as)
	}
	if len(c.Groups) == 0 {
		g := agentconfig.Group{Name: DefaultGroup}
		for _, s := range c.Servers {
			g.Servers = append(g.Servers, s.Address)
		}
		out.Groups = []agentconfig.Group{g}
		return out, nil
	}
	for _, g := range c.Groups {
		sg := agentconfig.Group{Name: g.Name}
		for _, m := range g.Servers {
			sg.Servers = append(sg.Servers, c.resolve(m).Address)
		}
		out.Groups = append(out.Groups, sg)
	}
	return out, nil
}

// BuildStack builds the authentication stack over the configured server groups, served by auth (the
// daemon's adapter over the agent). Errors are reported like Validate's, with the field and the line.
func (c *Config) BuildStack(auth policy.Authenticator) (*policy.Stack, error) {
	st, err := c.Authentication.Build(c.registry(auth))
	if err != nil {
		p := &problems{file: c.source, lines: c.lines}
		p.fromPolicy(err, "authentication", p.line("authentication.stack"))
		return nil, p.err()
	}
	return st, nil
}
