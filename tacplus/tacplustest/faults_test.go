package tacplustest

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// pap sends a PAP START for alice as session id; the first packet of a connection asks for single-connect.
func (c *client) pap(id uint32, first bool) {
	c.t.Helper()
	h := hdr(id, 1, 0)
	if first {
		h.Flags = tacplus.FlagSingleConnect
	}
	h.Version = ver(tacplus.AuthenTypePAP)
	c.send(h, papStart("alice", "alice-pw"))
}

// expectPass reads a reply and checks it is the PASS of session id.
func (c *client) expectPass(id uint32) {
	c.t.Helper()
	h, b := c.mustRecv()
	if r, ok := b.(*tacplus.AuthenReply); !ok || r.Status != tacplus.AuthenStatusPass || h.SessionID != id || h.SeqNo != 2 {
		c.t.Fatalf("want PASS for session 0x%x, got %v %v", id, h, b)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		// run drives one connection; it returns when the fault was observed.
		run  func(t *testing.T, c *client, srv *Server)
		want FaultCounts
	}{
		{"drop", Faults{DropReplies: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			c.pap(2, false)
			c.expectPass(2) // session 1's reply never comes: session 2's is the next on the wire
		}, FaultCounts{DropReplies: 1}},
		{"close mid-session", Faults{}, func(t *testing.T, c *client, srv *Server) {
			if _, r := c.authen(hdr(1, 1, tacplus.FlagSingleConnect), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "")); r.Status != tacplus.AuthenStatusGetUser {
				t.Fatalf("START: %v", r.Status)
			}
			srv.SetFaults(Faults{CloseMidSession: 1})
			c.send(hdr(1, 3, 0), cont("alice"))
			c.expectClosed()
		}, FaultCounts{CloseMidSession: 1}},
		{"truncate", Faults{Truncate: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if _, _, err := c.recv(); !errors.Is(err, io.ErrUnexpectedEOF) || tacplus.ReasonOf(err) != tacplus.ReasonShort {
				t.Fatalf("want a short packet, got %v", err)
			}
		}, FaultCounts{Truncate: 1}},
		{"garbage", Faults{Garbage: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if _, _, err := c.recv(); tacplus.ReasonOf(err) != tacplus.ReasonVersion {
				t.Fatalf("want a header that is no TACACS+ header, got %v", err)
			}
		}, FaultCounts{Garbage: 1}},
		{"wrong key", Faults{WrongKey: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if h, _, err := c.recv(); !errors.Is(err, tacplus.ErrBadSecret) || h.SessionID != 1 {
				t.Fatalf("want a bad secret on session 1, got %v %v", h, err)
			}
			c.pap(2, false)
			c.expectPass(2)
		}, FaultCounts{WrongKey: 1}},
		{"wrong seq_no", Faults{WrongSeq: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if h, _ := c.mustRecv(); h.SeqNo != 4 || h.SessionID != 1 {
				t.Fatalf("want seq_no 4 on session 1, got %v", h)
			}
			c.pap(2, false)
			c.expectPass(2)
		}, FaultCounts{WrongSeq: 1}},
		{"wrong session_id", Faults{WrongSession: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if h, _ := c.mustRecv(); h.SessionID != 1^wrongSessionMask || h.SeqNo != 2 {
				t.Fatalf("want session 0x%x, got %v", 1^wrongSessionMask, h)
			}
			c.pap(2, false)
			c.expectPass(2)
		}, FaultCounts{WrongSession: 1}},
		{"toggled UNENCRYPTED flag", Faults{ToggleUnencrypted: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if _, _, err := c.recv(); tacplus.ReasonOf(err) != tacplus.ReasonFlags {
				t.Fatalf("want a flags error, got %v", err)
			}
		}, FaultCounts{ToggleUnencrypted: 1}},
		{"several alterations at once", Faults{WrongSeq: 1, WrongSession: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if h, _ := c.mustRecv(); h.SeqNo != 4 || h.SessionID != 1^wrongSessionMask {
				t.Fatalf("want both faults, got %v", h)
			}
		}, FaultCounts{WrongSeq: 1, WrongSession: 1}},
		{"replacing fault wins", Faults{DropReplies: 1, WrongKey: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			c.pap(2, false)
			if _, _, err := c.recv(); !errors.Is(err, tacplus.ErrBadSecret) {
				t.Fatalf("the second reply should carry the WrongKey left over: %v", err)
			}
		}, FaultCounts{DropReplies: 1, WrongKey: 1}},
		{"error replies of every kind", Faults{ErrorReplies: 3}, func(t *testing.T, c *client, srv *Server) {
			c.pap(1, true)
			if _, b := c.mustRecv(); b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusError {
				t.Errorf("authentication: %v", b)
			}
			c.send(hdr(2, 1, 0), authorReq("alice", "service=shell", "cmd="))
			if _, b := c.mustRecv(); b.(*tacplus.AuthorResponse).Status != tacplus.AuthorStatusError {
				t.Errorf("authorization: %v", b)
			}
			c.send(hdr(3, 1, 0), acctReq(tacplus.AcctFlagStart, "alice", "9"))
			if _, b := c.mustRecv(); b.(*tacplus.AcctReply).Status != tacplus.AcctStatusError {
				t.Errorf("accounting: %v", b)
			}
			if recs := srv.Accounting(); len(recs) != 1 || recs[0].Status != tacplus.AcctStatusError {
				t.Errorf("records %+v, want one with status ERROR", recs)
			}
			c.pap(4, false)
			c.expectPass(4)
		}, FaultCounts{ErrorReplies: 3}},
		{"error reply mid-session", Faults{}, func(t *testing.T, c *client, srv *Server) {
			c.authen(hdr(1, 1, tacplus.FlagSingleConnect), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""))
			srv.SetFaults(Faults{ErrorReplies: 1})
			if _, r := c.authen(hdr(1, 3, 0), cont("alice")); r.Status != tacplus.AuthenStatusError {
				t.Fatalf("got %v", r.Status)
			}
			// ERROR ended the session.
			if _, r := c.authen(hdr(1, 5, 0), cont("alice-pw")); r.Status != tacplus.AuthenStatusError || srv.Stats().ProtocolErrors != 1 {
				t.Fatalf("the session should be over: %v", r.Status)
			}
		}, FaultCounts{ErrorReplies: 1}},
		{"always", Faults{WrongSeq: Always}, func(t *testing.T, c *client, srv *Server) {
			for i := range uint32(3) {
				c.pap(i+1, i == 0)
				if h, _ := c.mustRecv(); h.SeqNo != 4 {
					t.Fatalf("reply %d: %v", i, h)
				}
			}
			if f := srv.Faults(); f.WrongSeq != Always {
				t.Errorf("Always was consumed: %+v", f)
			}
		}, FaultCounts{WrongSeq: 3}},
		{"delay", Faults{Delay: 150 * time.Millisecond}, func(t *testing.T, c *client, _ *Server) {
			start := time.Now()
			c.pap(1, true)
			c.expectPass(1)
			if el := time.Since(start); el < 150*time.Millisecond {
				t.Fatalf("reply after %v", el)
			}
		}, FaultCounts{Delayed: 1}},
		{"restart", Faults{Restart: []tacplus.AuthenType{tacplus.AuthenTypeASCII}}, func(t *testing.T, c *client, _ *Server) {
			if _, r := c.authen(hdr(1, 1, tacplus.FlagSingleConnect), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "alice")); r.Status != tacplus.AuthenStatusRestart {
				t.Fatalf("want RESTART, got %v", r.Status)
			}
			c.pap(2, false) // the client restarts with PAP
			c.expectPass(2)
		}, FaultCounts{Restarts: 1}},
		{"cross session: another live session's id", Faults{}, func(t *testing.T, c *client, srv *Server) {
			// Session 1 stays live, waiting for its username.
			if _, r := c.authen(hdr(1, 1, tacplus.FlagSingleConnect), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "")); r.Status != tacplus.AuthenStatusGetUser {
				t.Fatalf("START: %v", r.Status)
			}
			srv.SetFaults(Faults{CrossSession: 1})
			c.pap(2, false)
			// Session 2's PASS arrives under session 1's id, obfuscated for that id (it decodes).
			if h, b := c.mustRecv(); h.SessionID != 1 || h.SeqNo != 2 || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
				t.Fatalf("want session 2's PASS under session 1's id, got %v %v", h, b)
			}
		}, FaultCounts{CrossSession: 1}},
		{"cross session alone falls back to a wrong id", Faults{CrossSession: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			if h, _ := c.mustRecv(); h.SessionID != 1^wrongSessionMask {
				t.Fatalf("want session 0x%x, got %v", 1^wrongSessionMask, h)
			}
		}, FaultCounts{CrossSession: 1}},
		{"close after reply", Faults{CloseAfterReply: 1}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true) // single-connect agreed, yet the server closes after its reply
			c.expectPass(1)
			c.expectClosed()
		}, FaultCounts{CloseAfterReply: 1}},
		{"prompt forever", Faults{PromptForever: true}, func(t *testing.T, c *client, _ *Server) {
			if _, r := c.authen(hdr(1, 1, tacplus.FlagSingleConnect), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "alice")); r.Status != tacplus.AuthenStatusGetData {
				t.Fatalf("START: %v", r.Status)
			}
			for seq := uint8(3); seq <= 9; seq += 2 {
				if _, r := c.authen(hdr(1, seq, 0), cont("alice-pw")); r.Status != tacplus.AuthenStatusGetData {
					t.Fatalf("CONTINUE %d: %v", seq, r.Status)
				}
			}
			c.send(hdr(1, 11, 0), &tacplus.AuthenContinue{Flags: tacplus.FlagAbort}) // ends it quietly
		}, FaultCounts{PromptForever: 5}},
		{"fail delay", Faults{FailDelay: 150 * time.Millisecond}, func(t *testing.T, c *client, _ *Server) {
			start := time.Now()
			h := hdr(1, 1, tacplus.FlagSingleConnect)
			h.Version = ver(tacplus.AuthenTypePAP)
			if _, r := c.authen(h, papStart("alice", "wrong")); r.Status != tacplus.AuthenStatusFail {
				t.Fatalf("want FAIL, got %v", r.Status)
			}
			if el := time.Since(start); el < 150*time.Millisecond {
				t.Fatalf("FAIL after %v", el)
			}
			c.pap(2, false) // PASS is not held back (not timed: only its arrival is checked)
			c.expectPass(2)
		}, FaultCounts{FailDelayed: 1}},
		{"only one user", Faults{User: "bob", ErrorReplies: Always}, func(t *testing.T, c *client, _ *Server) {
			c.pap(1, true)
			c.expectPass(1)
			if _, r := c.authen(hdr(2, 1, 0), papStart("bob", "bob-pw")); r.Status != tacplus.AuthenStatusError {
				t.Fatalf("bob: %v", r.Status)
			}
		}, FaultCounts{ErrorReplies: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Users: users(), AuthorRules: authorRules(), SingleConnect: true, Faults: tt.faults})
			c := dial(t, srv.Addr())
			c.t = t
			tt.run(t, c, srv)
			if got := srv.Stats().Faults; got != tt.want {
				t.Errorf("injected %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSetFaultsValidates(t *testing.T) {
	srv := startServer(t, Config{Users: users()})
	if err := srv.SetFaults(Faults{Truncate: -5}); !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("count -5: %v", err)
	}
	if err := srv.SetFaults(Faults{Delay: -time.Second}); !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("negative delay: %v", err)
	}
	if err := srv.SetFaults(Faults{Garbage: 2}); err != nil {
		t.Fatal(err)
	}
	if f := srv.Faults(); f.Garbage != 2 {
		t.Errorf("Faults() = %+v", f)
	}
}
