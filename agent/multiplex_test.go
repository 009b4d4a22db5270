package agent_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestMultiplexOutOfOrder: 1,000 sessions at once on ONE single-connect connection, with the server holding
// each user's replies back by a different delay so that it answers out of order. Every reply must reach the
// session it belongs to: each user gets its own authorization arguments and its own password checked.
func TestMultiplexOutOfOrder(t *testing.T) {
	const sessions, nusers = 1000, 10
	us := map[string]tacplustest.User{}
	var rules []tacplustest.AuthorRule
	for u := range nusers {
		name := fmt.Sprintf("u%d", u)
		// u0 is the slowest: the first sessions started are answered last.
		us[name] = tacplustest.User{Password: "pw-" + name, Delay: time.Duration(nusers-u) * 3 * time.Millisecond}
		rules = append(rules, tacplustest.AuthorRule{User: name, Permit: true, Args: []string{fmt.Sprintf("priv-lvl=%d", u)}})
	}
	srv := startServer(t, func(c *tacplustest.Config) { c.Users, c.AuthorRules = us, rules })
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}})
	// One login first: the negotiation is then over (and remembered), so the parallel sessions below do not
	// wait behind a slow first session, which would send them to connections of their own after 50 ms.
	if _, err := h.Authenticate(ctxT(t), pap("u0", "pw-u0"), nil); err != nil {
		t.Fatalf("first login: %v", err)
	}

	var order atomic.Int64
	finished := make([]int64, sessions) // completion rank of each session, by start index
	var errs firstErrs
	runParallel(sessions, func(i int) {
		u := i % nusers
		name := fmt.Sprintf("u%d", u)
		if i%2 == 0 {
			r, err := h.Authenticate(ctxT(t), pap(name, "pw-"+name), nil)
			if err != nil {
				errs.add("session %d (PAP %s): %v", i, name, err)
			} else if r.Status != tacplus.AuthenStatusPass {
				errs.add("session %d: status %s", i, r.Status)
			}
		} else {
			r, err := h.Authorize(ctxT(t), agent.AuthorRequest{User: name, Method: tacplus.MethodTACACSPlus,
				Service: tacplus.ServiceLogin, Args: []string{"service=shell", "cmd="}})
			want := fmt.Sprint(u)
			if err != nil {
				errs.add("session %d (author %s): %v", i, name, err)
			} else if !slices.Contains(r.Returned.Values("priv-lvl"), want) {
				errs.add("session %d (author %s) got args %v, want priv-lvl=%s: a reply went to the wrong session", i, name, r.Returned, want)
			}
		}
		finished[i] = order.Add(1)
	})
	errs.check(t)

	st := srv.Stats()
	if st.Connections != 1 || st.SingleConnectAgreed != 1 {
		t.Errorf("server saw %d connections (%d single-connect), want 1", st.Connections, st.SingleConnectAgreed)
	}
	if st.Sessions != sessions+1 {
		t.Errorf("server saw %d sessions, want %d", st.Sessions, sessions+1)
	}
	if got := h.metric(h.m().ConnOpens.WithLabelValues(srv.Addr())); got != 1 {
		t.Errorf("tacagent_connection_opens_total = %v, want 1", got)
	}
	if got := h.metric(h.m().SingleConnect.WithLabelValues(srv.Addr())); got != 1 {
		t.Errorf("tacagent_single_connect = %v, want 1", got)
	}
	// The replies really were out of order: some slow-user session finished after a later fast one.
	inversions := 0
	for i := 0; i+1 < sessions; i++ {
		if i%nusers == 0 && finished[i] > finished[i+nusers-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Errorf("no session of the slowest user finished after a faster one: the test did not reorder replies")
	}
}

// TestSingleConnectRefused: a server that refuses single-connect (and closes after each session, as classic
// servers do) still serves every request, on one connection per session; nothing leaks.
func TestSingleConnectRefused(t *testing.T) {
	for _, tc := range []struct {
		name            string
		serverAgrees    bool
		keepOpen        bool
		noSingleConnect bool
	}{
		{name: "refused, closes after each session"},
		{name: "not asked, server keeps connections open", keepOpen: true, noSingleConnect: true},
		{name: "not asked, server closes after each session", noSingleConnect: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 50
			srv := startServer(t, func(c *tacplustest.Config) { c.SingleConnect, c.KeepOpen = tc.serverAgrees, tc.keepOpen })
			s := server(srv.Addr())
			s.NoSingleConnect = tc.noSingleConnect
			h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
			var errs firstErrs
			runParallel(n, func(i int) {
				if _, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil {
					errs.add("login %d: %v", i, err)
				}
			})
			errs.check(t)
			// A second wave, once the mode is known.
			runParallel(n, func(i int) {
				if _, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil {
					errs.add("login %d: %v", i, err)
				}
			})
			errs.check(t)
			st := srv.Stats()
			if !tc.noSingleConnect && st.SingleConnectRefused == 0 {
				t.Errorf("the server refused no single-connect request")
			}
			if st.SingleConnectAgreed != 0 {
				t.Errorf("SingleConnectAgreed = %d", st.SingleConnectAgreed)
			}
			if st.Connections < n {
				t.Errorf("%d connections for %d sessions: the fallback did not use one connection per session", st.Connections, 2*n)
			}
			if got := h.metric(h.m().SingleConnect.WithLabelValues(srv.Addr())); got != 0 {
				t.Errorf("tacagent_single_connect = %v, want 0", got)
			}
			// Every per-session connection is closed by the agent: none stays open on either side.
			eventually(t, waitLimit, "server connections closed", func() bool { return srv.Stats().OpenConnections <= 1 })
			rep, err := h.Status(ctxT(t))
			if err != nil || rep.Servers[0].SingleConnect {
				t.Errorf("status %+v %v: want single-connect off", rep, err)
			}
		})
	}
}

// TestConnectionsPerServer: with ConnectionsPerServer 3 the agent keeps three multiplexed connections to
// the server, status shows them, and concurrent sessions go to all three (each one negotiated
// single-connect with its own first session); no other connection is opened.
func TestConnectionsPerServer(t *testing.T) {
	srv := startServer(t, nil)
	s := server(srv.Addr())
	s.ConnectionsPerServer = 3
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
	eventually(t, waitLimit, "three connections open", func() bool {
		st, err := h.Status(ctxT(t))
		return err == nil && st.Servers[0].Connections == 3 && st.Servers[0].Open == 3
	})
	var errs firstErrs
	runParallel(60, func(int) {
		if _, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil {
			errs.add("login: %v", err)
		}
	})
	errs.check(t)
	st := srv.Stats()
	if st.Connections != 3 || st.SingleConnectAgreed != 3 || st.AuthenPass != 60 {
		t.Fatalf("server saw %d connections, %d negotiated, %d PASS; want 3, 3, 60", st.Connections, st.SingleConnectAgreed, st.AuthenPass)
	}
	if v := h.metric(h.m().ConnsOpen.WithLabelValues(srv.Addr())); v != 3 {
		t.Fatalf("connections_open = %v, want 3", v)
	}
}
