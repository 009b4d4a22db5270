package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestRetryRules checks each retry rule of the supervisor (docs/policy.md, the method-list rule): the
// next server is tried only on no response, ERROR or unreachable; a FAIL stops; a connection lost before
// any reply is retried once on the same server; a session that showed a prompt is never retried.
func TestRetryRules(t *testing.T) {
	type want struct {
		class      error // nil: success
		servedBy   string
		secSession int64 // sessions the secondary saw
		primDead   bool
	}
	const p, s = "primary", "secondary"
	for _, tc := range []struct {
		name    string
		faults  tacplustest.Faults
		primary string // "down": nothing listens
		run     func(t *testing.T, h *harness) (string, error)
		want    want
	}{
		{name: "FAIL stops", run: papAs("alice", "wrong"),
			want: want{class: tacplus.ErrAuthenticationFailed, servedBy: p}},
		{name: "authorization FAIL stops", run: authorize("reload"),
			want: want{class: tacplus.ErrDenied, servedBy: p}},
		{name: "ERROR goes to the next server", faults: tacplustest.Faults{ErrorReplies: 1}, run: papAs("alice", "alice-pw"),
			want: want{servedBy: s, secSession: 1}},
		{name: "no reply goes to the next server and marks dead", faults: tacplustest.Faults{DropReplies: 1}, run: papAs("alice", "alice-pw"),
			want: want{servedBy: s, secSession: 1, primDead: true}},
		{name: "unreachable goes to the next server", primary: "down", run: papAs("alice", "alice-pw"),
			want: want{servedBy: s, secSession: 1, primDead: true}},
		{name: "bad secret goes to the next server and marks dead", faults: tacplustest.Faults{WrongKey: 1}, run: papAs("alice", "alice-pw"),
			want: want{servedBy: s, secSession: 1, primDead: true}},
		{name: "connection lost before a reply: same server once", faults: tacplustest.Faults{CloseMidSession: 1}, run: papAs("alice", "alice-pw"),
			want: want{servedBy: p}},
		// Lost again on a fresh connection to the same server: a server that accepts and drops connections,
		// not the idle-close race; it is dead-timed so that later logins do not pay for it (found by chaos).
		{name: "connection lost twice: next server, primary dead-timed", faults: tacplustest.Faults{CloseMidSession: 2}, run: papAs("alice", "alice-pw"),
			want: want{servedBy: s, secSession: 1, primDead: true}},
		// A reply with a wrong seq_no ends its own session with ErrProtocol (it saw a reply: never retried)
		// and desynchronises the connection (issue 12 point 1: the other sessions get ConnectionLost). A
		// protocol error is the server's own failure: it is dead-timed (issue 12 point 4).
		{name: "protocol error stops, marks dead", faults: tacplustest.Faults{WrongSeq: 1}, run: papAs("alice", "alice-pw"),
			want: want{class: tacplus.ErrProtocol, servedBy: p, primDead: true}},
		// A server that prompts past max_prompts: a protocol error of the server too (issue 12 point 6).
		{name: "prompting forever stops, marks dead", faults: tacplustest.Faults{PromptForever: true}, run: asciiLogin,
			want: want{class: tacplus.ErrProtocol, servedBy: p, primDead: true}},
		{name: "prompted login is not retried", faults: tacplustest.Faults{User: "alice", CloseMidSession: 1}, run: asciiLogin,
			want: want{class: tacplus.ErrConnectionLost, servedBy: p}},
		{name: "accounting ERROR is retried", faults: tacplustest.Faults{ErrorReplies: 1}, run: account,
			want: want{servedBy: s, secSession: 1}},
		// The STOP goes straight to the secondary: the primary is dead-timed by then.
		{name: "accounting without a reply is retried", faults: tacplustest.Faults{DropReplies: 1}, run: account,
			want: want{servedBy: s, secSession: 2, primDead: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := startServer(t, nil)
			var primAddr string
			var prim *tacplustest.Server
			if tc.primary == "down" {
				primAddr = deadAddr(t)
			} else {
				prim = startServer(t, func(c *tacplustest.Config) { c.Faults = tc.faults })
				primAddr = prim.Addr()
			}
			ps := server(primAddr)
			ps.Timeout = 300 * time.Millisecond
			h := newAgent(t, agent.Config{Servers: []agent.Server{ps, server(sec.Addr())}, DeadTime: time.Minute})
			if prim != nil {
				eventually(t, waitLimit, "primary connected", func() bool { return prim.Stats().Connections == 1 })
			}
			served, err := tc.run(t, h)
			if tc.want.class == nil && err != nil {
				t.Fatalf("error %v, want success", err)
			}
			if tc.want.class != nil {
				wantClass(t, err, tc.want.class)
			}
			wantAddr := map[string]string{p: primAddr, s: sec.Addr()}[tc.want.servedBy]
			if served != wantAddr {
				t.Errorf("answered by %q, want the %s %q", served, tc.want.servedBy, wantAddr)
			}
			if got := sec.Stats().Sessions; got != tc.want.secSession {
				t.Errorf("secondary saw %d sessions, want %d", got, tc.want.secSession)
			}
			dead := h.metric(h.m().ServerDead.WithLabelValues(primAddr)) == 1
			if dead != tc.want.primDead {
				t.Errorf("primary dead = %v, want %v", dead, tc.want.primDead)
			}
		})
	}
}

func papAs(user, pw string) func(*testing.T, *harness) (string, error) {
	return func(t *testing.T, h *harness) (string, error) {
		r, err := h.Authenticate(ctxT(t), pap(user, pw), nil)
		if r == nil {
			return "", err
		}
		return r.Server, err
	}
}

func authorize(cmd string) func(*testing.T, *harness) (string, error) {
	return func(t *testing.T, h *harness) (string, error) {
		r, err := h.Authorize(ctxT(t), agent.AuthorRequest{User: "alice", Method: tacplus.MethodTACACSPlus,
			Service: tacplus.ServiceLogin, Args: []string{"service=shell", "cmd=" + cmd}})
		if r == nil {
			return "", err
		}
		return r.Server, err
	}
}

// asciiLogin answers the username; the fault (armed for alice) then closes the connection instead of the
// GETPASS reply.
func asciiLogin(t *testing.T, h *harness) (string, error) {
	r, err := h.Authenticate(ctxT(t), agent.AuthenRequest{}, func(_ context.Context, p agent.Prompt) ([]byte, error) {
		switch p.Status {
		case tacplus.AuthenStatusGetUser:
			return []byte("alice"), nil
		}
		return []byte("alice-pw"), nil
	})
	if r == nil {
		return "", err
	}
	if r.Server == "" {
		var te *tacplus.Error
		if asTacErr(err, &te) {
			return te.Server, err
		}
	}
	return r.Server, err
}

// account sends the START and STOP records of a shell session (no cmd argument: RFC 8907 section 8.2
// requires one only for command authorization).
func account(t *testing.T, h *harness) (string, error) {
	var served string
	for _, flags := range []tacplus.AcctFlag{tacplus.AcctFlagStart, tacplus.AcctFlagStop} {
		r, err := h.Account(ctxT(t), agent.AcctRequest{User: "alice", Flags: flags, Method: tacplus.MethodTACACSPlus,
			Service: tacplus.ServiceLogin, Port: "tty1", Args: []string{"task_id=42", "service=shell"}})
		if err != nil {
			return "", err
		}
		if flags == tacplus.AcctFlagStart {
			served = r.Server
		}
	}
	return served, nil
}

// TestBadPacketsByReason: every rejected reply is counted under the reason the codec or the session gave.
func TestBadPacketsByReason(t *testing.T) {
	for _, tc := range []struct {
		fault  tacplustest.Faults
		reason string
	}{
		{tacplustest.Faults{WrongSeq: 1}, "seq"},
		{tacplustest.Faults{WrongKey: 1}, "bad_secret"},
		{tacplustest.Faults{WrongSession: 1}, "session"},
		{tacplustest.Faults{ToggleUnencrypted: 1}, "flags"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			srv := startServer(t, nil)
			s := server(srv.Addr())
			s.Timeout = 200 * time.Millisecond
			h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
			h.login(t, "alice", "alice-pw")
			srv.SetFaults(tc.fault)
			h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
			eventually(t, waitLimit, "bad packet counted", func() bool {
				return h.metric(h.m().BadPackets.WithLabelValues(srv.Addr(), tc.reason)) >= 1
			})
		})
	}
}
