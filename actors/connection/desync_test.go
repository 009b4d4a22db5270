package connection

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
)

// The adversary here is a server that answers on the right socket but for the wrong session (issue 12
// point 1): a connection that cannot match a packet exactly to the session waiting for it tears itself
// down, and no session may take another's answer for its own.

// readStart reads one packet and returns its header and the PAP password it carries.
func (c *peerConn) readStart() (tacplus.Header, string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(waitLimit))
	h, raw, err := c.rd.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	b, err := c.codec.NewBody(h)
	if err == nil {
		err = c.codec.DecodeBody(h, raw, b)
	}
	if err != nil {
		c.t.Fatalf("decode: %v", err)
	}
	st, ok := b.(*tacplus.AuthenStart)
	if !ok {
		c.t.Fatalf("got %T, want a START", b)
	}
	return h, st.Data
}

// send writes body under header h as it is (the test picks session_id, seq_no, type and flags). A write
// error is ignored: the client may already have closed a connection it no longer trusts.
func (c *peerConn) send(h tacplus.Header, body tacplus.Body) {
	c.t.Helper()
	b, err := c.codec.Marshal(h, body)
	if err != nil {
		c.t.Fatal(err)
	}
	c.c.Write(b)
}

func reply(h tacplus.Header, sid uint32, seq uint8, flags tacplus.HeaderFlag) tacplus.Header {
	h.SessionID, h.SeqNo, h.Flags = sid, seq, flags
	return h
}

var (
	pass = &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass}
	fail = &tacplus.AuthenReply{Status: tacplus.AuthenStatusFail}
)

// loginAs starts a PAP login and returns its request id.
func (h *harness) loginAs(user, password string, deadline time.Time) uint64 {
	id := reqIDs.Add(1)
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: id, Deadline: deadline, Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin,
			Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin, User: user, Password: []byte(password)}}})
	return id
}

// outcomes collects n outcomes by request id.
func (h *harness) outcomes(n int) map[uint64]*messages.Outcome {
	h.t.Helper()
	out := make(map[uint64]*messages.Outcome, n)
	for range n {
		o := h.outcome()
		out[o.ReqID] = o
	}
	return out
}

// event waits for the next event of type T, skipping others (Negotiated, ConnectionIdle, ...).
func event[T any](t *testing.T, h *harness) T {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-h.events.C():
			if v, ok := m.(T); ok {
				return v
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %T within %v", zero, waitLimit)
			return zero
		}
	}
}

// failure waits for the actor's Failure and checks it is a protocol error.
func (h *harness) protocolFailure() {
	h.t.Helper()
	select {
	case f := <-h.failures:
		if f == nil || f.Dial || !errors.Is(f, tacplus.ErrProtocol) {
			h.t.Fatalf("failure %v, want a protocol error", f)
		}
	case <-time.After(waitLimit):
		h.t.Fatal("the connection did not fail")
	}
}

// multiplexed starts a harness and a warm-up session the server answers with the single-connect flag, so
// that the next sessions share the socket.
func multiplexed(t *testing.T) (*harness, *peerConn) {
	t.Helper()
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.NegotiationWait = -1 })
	h.login()
	c := p.accept()
	first, _ := c.readStart()
	c.send(reply(first, first.SessionID, 2, tacplus.FlagSingleConnect), pass)
	if o := h.outcome(); o.Err != nil {
		t.Fatalf("warm-up: %v", o.Err)
	}
	if n := event[*messages.Negotiated](t, h); !n.SingleConnect {
		t.Fatalf("negotiated %+v", n)
	}
	return h, c
}

// wantNoPass fails the test if any outcome reports success.
func wantNoPass(t *testing.T, os map[uint64]*messages.Outcome, users map[uint64]string) {
	t.Helper()
	for id, o := range os {
		if o.Err == nil {
			t.Errorf("%s's session reported PASS (server %s, session 0x%08x): it took another session's answer", users[id], o.Server, o.SessionID)
		}
	}
}

func isProtocolLoss(err error) bool {
	return errors.Is(err, tacplus.ErrConnectionLost) && errors.Is(err, tacplus.ErrProtocol)
}

// TestMisroutedReplyNeverPasses is the headline regression: two logins share a multiplexed connection;
// alice typed a wrong password, bob the right one. The server answers alice's FAIL under bob's
// session_id, then bob's PASS under bob's id again (its second answer for that id). Bob gets a FAIL he
// did not deserve (fail closed); the second answer for a session that has had its last reply shows the
// connection desynchronised: alice's session ends with ConnectionLost caused by ErrProtocol, never PASS,
// the supervisor is told (Desync) and the actor fails for a restart.
//
// The variant answers alice's FAIL under a session_id nobody has: both sessions end, neither passes.
func TestMisroutedReplyNeverPasses(t *testing.T) {
	for _, unknown := range []bool{false, true} {
		h, c := multiplexed(t)
		users := map[uint64]string{}
		users[h.loginAs("alice", "wrong", time.Time{})] = "alice"
		users[h.loginAs("bob", "right", time.Time{})] = "bob"
		sids := map[string]tacplus.Header{}
		for range 2 {
			hd, pw := c.readStart()
			sids[pw] = hd
		}
		alice, bob := sids["wrong"], sids["right"]
		to := bob.SessionID
		if unknown {
			to = alice.SessionID ^ bob.SessionID ^ 0x5a5a5a5a
		}
		c.send(reply(alice, to, 2, 0), fail) // alice's answer, under bob's (or nobody's) id
		c.send(reply(bob, bob.SessionID, 2, 0), pass)
		os := h.outcomes(2)
		wantNoPass(t, os, users)
		for id, o := range os {
			if users[id] == "alice" || unknown {
				if !isProtocolLoss(o.Err) || o.Retryable != true {
					t.Errorf("unknown=%v: %s's outcome %v (retryable %v), want ConnectionLost caused by ErrProtocol, retryable (no reply was its own)",
						unknown, users[id], o.Err, o.Retryable)
				}
			}
		}
		d := event[*messages.Desync](t, h)
		if d.Server != c.ln.Addr().String() || (d.Reason != "session" && d.Reason != "seq") {
			t.Errorf("desync %+v", d)
		}
		h.protocolFailure()
	}
}

// TestLateReplyForEndedSessionIsDesync: a session had its PASS; the server sends another reply for it
// (a duplicate, or one meant for someone else): the tombstone recognises it and the connection ends. The
// other session, which had no reply, is safe to retry.
func TestLateReplyForEndedSessionIsDesync(t *testing.T) {
	h, c := multiplexed(t)
	a := h.loginAs("alice", "pw-a", time.Time{})
	h.loginAs("bob", "pw-b", time.Time{})
	sids := map[string]tacplus.Header{}
	for range 2 {
		hd, pw := c.readStart()
		sids[pw] = hd
	}
	c.send(reply(sids["pw-a"], sids["pw-a"].SessionID, 2, 0), pass)
	if o := h.outcome(); o.ReqID != a || o.Err != nil {
		t.Fatalf("alice: %+v", o)
	}
	c.send(reply(sids["pw-a"], sids["pw-a"].SessionID, 2, 0), pass) // again, for a session that is over
	o := h.outcome()
	if !isProtocolLoss(o.Err) || !o.Retryable {
		t.Fatalf("bob: %v retryable=%v, want a retryable ConnectionLost caused by ErrProtocol", o.Err, o.Retryable)
	}
	// "session" when alice's end was already recorded (a tombstone), "seq" when her route was still there
	// (a reply to a session that is owed none): the two orders are both legitimate.
	if d := event[*messages.Desync](t, h); d.Reason != "session" && d.Reason != "seq" {
		t.Errorf("desync %+v, want reason session or seq", d)
	}
	h.protocolFailure()
}

// TestBadHeaderIsDesync: a reply that skips a seq_no, one of another packet type, and one whose version
// the session refuses each end the connection with ErrProtocol, counted under their reason.
func TestBadHeaderIsDesync(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		mod          func(h tacplus.Header) (tacplus.Header, tacplus.Body)
	}{
		{"skipped seq_no", "seq", func(h tacplus.Header) (tacplus.Header, tacplus.Body) { return reply(h, h.SessionID, 4, 0), pass }},
		{"wrong type", "type", func(h tacplus.Header) (tacplus.Header, tacplus.Body) {
			h = reply(h, h.SessionID, 2, 0)
			h.Type = tacplus.TypeAuthor
			return h, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd}
		}},
		{"wrong version", "version", func(h tacplus.Header) (tacplus.Header, tacplus.Body) {
			h = reply(h, h.SessionID, 2, 0)
			h.Version ^= 1 // PAP is minor 1: a PASS at minor 0 is not this session's
			return h, pass
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, c := multiplexed(t)
			h.loginAs("alice", "pw-a", time.Time{})
			h.loginAs("bob", "pw-b", time.Time{})
			var first tacplus.Header
			for i := range 2 {
				hd, _ := c.readStart()
				if i == 0 {
					first = hd
				}
			}
			c.send(tc.mod(first))
			os := h.outcomes(2)
			wantNoPass(t, os, nil)
			for _, o := range os {
				switch {
				case o.SessionID == first.SessionID:
					// The bad reply was addressed to this session: it ends with the protocol error itself
					// (an answer, if a bad one: never retried as "lost before a reply").
					if !errors.Is(o.Err, tacplus.ErrProtocol) || errors.Is(o.Err, tacplus.ErrConnectionLost) {
						t.Errorf("addressed session: %v, want class ErrProtocol", o.Err)
					}
				case !isProtocolLoss(o.Err) || !o.Retryable:
					t.Errorf("other session: %v retryable=%v, want a retryable ConnectionLost caused by ErrProtocol", o.Err, o.Retryable)
				}
			}
			if d := event[*messages.Desync](t, h); d.Reason != tc.reason {
				t.Errorf("desync %+v, want reason %s", d, tc.reason)
			}
			h.protocolFailure()
			if n := testutil.ToFloat64(h.metrics.BadPackets.WithLabelValues(c.ln.Addr().String(), tc.reason)); n != 1 {
				t.Errorf("bad_packets{reason=%q} = %v, want 1 (the packet, counted once)", tc.reason, n)
			}
		})
	}
}

// TestPerSessionWrongSessionID: on a connection that carries one session (single-connect not asked), a
// reply under another session_id fails that session with ErrProtocol; it never passes.
func TestPerSessionWrongSessionID(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.SingleConnect = false })
	h.loginAs("alice", "wrong", time.Time{})
	c := p.accept()
	hd, _ := c.readStart()
	c.send(reply(hd, hd.SessionID+1, 2, 0), pass)
	if o := h.outcome(); !isProtocolLoss(o.Err) {
		t.Fatalf("outcome %v, want ConnectionLost caused by ErrProtocol", o.Err)
	}
	if d := event[*messages.Desync](t, h); d.Reason != "session" {
		t.Errorf("desync %+v", d)
	}
	h.protocolFailure()
}

// TestAbortedSessionOwesOneReply: a caller gives up while the server holds the turn (no ABORT can be sent
// then, RFC 8907 section 4.1). The server's one late reply for that session is expected and dropped; the
// other session goes on; a second reply for the ended session is a desync.
func TestAbortedSessionOwesOneReply(t *testing.T) {
	h, c := multiplexed(t)
	a := h.loginAs("alice", "pw-a", time.Time{})
	b := h.loginAs("bob", "pw-b", time.Time{})
	sids := map[string]tacplus.Header{}
	for range 2 {
		hd, pw := c.readStart()
		sids[pw] = hd
	}
	h.sys.Root.Send(h.conn, &messages.Abort{ReqID: a, Reason: "caller gone"})
	if o := h.outcome(); o.ReqID != a || !errors.Is(o.Err, tacplus.ErrAborted) {
		t.Fatalf("alice: %+v", o)
	}
	ha, hb := sids["pw-a"], sids["pw-b"]
	c.send(reply(ha, ha.SessionID, 2, 0), fail) // the reply alice's session was owed
	c.send(reply(hb, hb.SessionID, 2, 0), pass)
	if o := h.outcome(); o.ReqID != b || o.Err != nil {
		t.Fatalf("bob: %+v, want PASS: the owed late reply must not end the connection", o)
	}
	h.noFailure()
	c.send(reply(ha, ha.SessionID, 2, 0), fail) // owed no more
	if d := event[*messages.Desync](t, h); d.Reason != "session" && d.Reason != "seq" {
		t.Errorf("desync %+v", d)
	}
}

// TestReplyOutOfTurn: the server sends a packet for a session while the client holds the turn (a prompt
// is waiting for the user): the connection is desynchronised. The addressed session ends with
// ErrProtocol, the other with ConnectionLost(ErrProtocol).
func TestReplyOutOfTurn(t *testing.T) {
	h, c := multiplexed(t)
	ascii := reqIDs.Add(1)
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: ascii, Authen: &messages.AuthenRequest{}}})
	a, _ := c.readStart()
	h.loginAs("bob", "pw-b", time.Time{})
	c.readStart()
	c.send(reply(a, a.SessionID, 2, 0), &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetUser, ServerMsg: "Username: "})
	if p := next[*messages.Prompt](t, h.replies); p.ReqID != ascii {
		t.Fatalf("prompt %+v", p)
	}
	c.send(reply(a, a.SessionID, 4, 0), pass) // the client owes a CONTINUE: nothing may come now
	for id, o := range h.outcomes(2) {
		if id == ascii {
			if !errors.Is(o.Err, tacplus.ErrProtocol) || errors.Is(o.Err, tacplus.ErrConnectionLost) {
				t.Errorf("prompted session: %v, want class ErrProtocol", o.Err)
			}
		} else if !isProtocolLoss(o.Err) {
			t.Errorf("bob: %v, want ConnectionLost caused by ErrProtocol", o.Err)
		}
	}
	if d := event[*messages.Desync](t, h); d.Reason != "seq" {
		t.Errorf("desync %+v, want reason seq", d)
	}
	h.protocolFailure()
}

// TestReplyToAbortTolerated: a session in a conversation is aborted (CONTINUE with ABORT). RFC 8907 lets
// the server end it silently, but deployed servers answer the ABORT (tacquito: FAIL "ending per client
// request"). That one answer, at the next seq_no and of the session's type, is dropped: it reaches nobody
// and the connection and its other session go on. A second packet for the aborted session is a desync.
func TestReplyToAbortTolerated(t *testing.T) {
	h, c := multiplexed(t)
	ascii := reqIDs.Add(1)
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: ascii, Authen: &messages.AuthenRequest{}}})
	a, _ := c.readStart()
	bob := h.loginAs("bob", "pw-b", time.Time{})
	hb, _ := c.readStart()
	c.send(reply(a, a.SessionID, 2, 0), &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetUser, ServerMsg: "Username: "})
	if p := next[*messages.Prompt](t, h.replies); p.ReqID != ascii {
		t.Fatalf("prompt %+v", p)
	}
	h.sys.Root.Send(h.conn, &messages.Abort{ReqID: ascii, Reason: "probe"})
	if ab := c.read(); ab.SessionID != a.SessionID || ab.SeqNo != 3 {
		t.Fatalf("got %+v, want the CONTINUE with ABORT", ab)
	}
	if o := h.outcome(); o.ReqID != ascii || !errors.Is(o.Err, tacplus.ErrAborted) {
		t.Fatalf("aborted session: %+v", o)
	}
	c.send(reply(a, a.SessionID, 4, 0), fail) // the server's answer to the ABORT
	c.send(reply(hb, hb.SessionID, 2, 0), pass)
	if o := h.outcome(); o.ReqID != bob || o.Err != nil {
		t.Fatalf("bob: %+v, want PASS: the answer to an ABORT must not end the connection", o)
	}
	h.noFailure()
	c.send(reply(a, a.SessionID, 4, 0), fail) // owed no more
	if d := event[*messages.Desync](t, h); d.Reason != "session" && d.Reason != "seq" {
		t.Errorf("desync %+v", d)
	}
}
