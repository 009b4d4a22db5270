package agent_test

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
)

// TestStatusExplains: status names each server, says since when it is in its state, and dates its last
// error; a dead server's state changes only when it dies, not when status is asked again.
func TestStatusExplains(t *testing.T) {
	live := startServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close() // nothing listens: connects are refused

	start := time.Now()
	dead := server(deadAddr)
	dead.Name = "gone"
	up := server(live.Addr())
	up.Name = "primary"
	h := newAgent(t, agent.Config{
		Servers:  []agent.Server{dead, up},
		Groups:   []agent.Group{{Name: "core", Servers: []string{deadAddr, live.Addr()}}, {Name: "acct", Servers: []string{live.Addr()}}},
		DeadTime: time.Hour,
	})
	h.login(t, "alice", "alice-pw") // fails over from the dead server to the live one

	var st *agent.Status
	eventually(t, waitLimit, "the dead server dead and the live one up", func() bool {
		st, err = h.Status(ctxT(t))
		return err == nil && st.Servers[0].State == "dead" && st.Servers[1].State == "up"
	})
	d, u := st.Servers[0], st.Servers[1]
	if d.Name != "gone" || d.Addr != deadAddr || !slices.Equal(d.Groups, []string{"core"}) {
		t.Errorf("dead server: name %q addr %q groups %v", d.Name, d.Addr, d.Groups)
	}
	if u.Name != "primary" || !slices.Equal(u.Groups, []string{"core", "acct"}) {
		t.Errorf("live server: name %q groups %v", u.Name, u.Groups)
	}
	now := time.Now()
	for _, s := range st.Servers {
		if s.Since.Before(start) || s.Since.After(now) {
			t.Errorf("%s: since %v, not between the start %v and now %v", s.Name, s.Since, start, now)
		}
	}
	if d.LastError == "" || d.LastErrorAt.Before(start) || d.LastErrorAt.After(now) {
		t.Errorf("dead server: last error %q at %v", d.LastError, d.LastErrorAt)
	}
	if d.DeadUntil.Before(now.Add(50 * time.Minute)) {
		t.Errorf("dead until %v, want about an hour from now", d.DeadUntil)
	}
	if u.LastError != "" || !u.LastErrorAt.IsZero() || u.TLS != nil {
		t.Errorf("live server: last error %q at %v, TLS %+v", u.LastError, u.LastErrorAt, u.TLS)
	}
	// Asking again changes no "since".
	again, err := h.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Servers[0].Since.Equal(d.Since) || !again.Servers[1].Since.Equal(u.Since) {
		t.Errorf("since moved between two status calls: %v/%v then %v/%v", d.Since, u.Since, again.Servers[0].Since, again.Servers[1].Since)
	}
}
