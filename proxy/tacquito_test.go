package proxy

import (
	"slices"
	"testing"

	tq "github.com/facebookincubator/tacquito"

	"github.com/tacagent/tacagent/tacplus"
)

// tacquito's client (an independent implementation) through the front end: every flow it speaks, on one
// single-connect connection, checked against what the upstream server recorded.

func tqClient(t *testing.T, addr string) *tq.Client {
	t.Helper()
	c, err := tq.NewClient(tq.SetClientDialer("tcp", addr, localKey))
	if err != nil {
		t.Fatalf("tacquito client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tqHeader(typ tq.HeaderType, minor uint8, seq int, id tq.SessionID) *tq.Header {
	return tq.NewHeader(
		tq.SetHeaderVersion(tq.Version{MajorVersion: tq.MajorVersion, MinorVersion: minor}),
		tq.SetHeaderType(typ), tq.SetHeaderSeqNo(seq), tq.SetHeaderSessionID(id), tq.SetHeaderFlag(tq.SingleConnect))
}

func tqSend(t *testing.T, c *tq.Client, h *tq.Header, body tq.EncoderDecoder) *tq.Packet {
	t.Helper()
	resp, err := c.Send(tq.NewPacket(tq.SetPacketHeader(h), tq.SetPacketBodyUnsafe(body)))
	if err != nil {
		t.Fatalf("tacquito Send: %v", err)
	}
	if resp.Header.SessionID != h.SessionID || int(resp.Header.SeqNo) != int(h.SeqNo)+1 {
		t.Fatalf("reply header %+v does not answer %+v", resp.Header, h)
	}
	if resp.Header.Flags&tq.SingleConnect == 0 {
		t.Fatalf("single-connect not echoed: %+v", resp.Header)
	}
	return resp
}

func tqAuthen(t *testing.T, p *tq.Packet) tq.AuthenReply {
	t.Helper()
	var r tq.AuthenReply
	if err := tq.Unmarshal(p.Body, &r); err != nil {
		t.Fatalf("tacquito cannot decode the REPLY: %v", err)
	}
	return r
}

func TestTacquitoClient(t *testing.T) {
	srv := backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), nil)
	c := tqClient(t, f.addr)

	t.Run("pap", func(t *testing.T) {
		for i, tt := range []struct {
			pw   string
			want tq.AuthenStatus
		}{{"alice-pw", tq.AuthenStatusPass}, {"wrong", tq.AuthenStatusFail}} {
			start := tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
				tq.SetAuthenStartType(tq.AuthenTypePAP), tq.SetAuthenStartService(tq.AuthenServiceLogin),
				tq.SetAuthenStartUser("alice"), tq.SetAuthenStartPort("tty0"), tq.SetAuthenStartRemAddr("10.1.1.1"),
				tq.SetAuthenStartData(tq.AuthenData(tt.pw)))
			if r := tqAuthen(t, tqSend(t, c, tqHeader(tq.Authenticate, 1, 1, tq.SessionID(100+i)), start)); r.Status != tt.want {
				t.Fatalf("%q: %v, want %v", tt.pw, r.Status, tt.want)
			}
		}
		if st := srv.Stats(); st.AuthenPass != 1 || st.AuthenFail != 1 {
			t.Fatalf("server saw pass=%d fail=%d", st.AuthenPass, st.AuthenFail)
		}
	})

	t.Run("ascii with GETUSER, GETPASS and a hidden GETDATA", func(t *testing.T) {
		const id = tq.SessionID(0x7000)
		start := tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
			tq.SetAuthenStartType(tq.AuthenTypeASCII), tq.SetAuthenStartService(tq.AuthenServiceLogin),
			tq.SetAuthenStartPort("tty0"), tq.SetAuthenStartRemAddr("10.1.1.1"))
		steps := []struct {
			body   tq.EncoderDecoder
			want   tq.AuthenStatus
			noEcho bool
		}{
			{start, tq.AuthenStatusGetUser, false},
			{tq.NewAuthenContinue(tq.SetAuthenContinueUserMessage("bob")), tq.AuthenStatusGetPass, true},
			{tq.NewAuthenContinue(tq.SetAuthenContinueUserMessage("bob-pw")), tq.AuthenStatusGetData, true},
			{tq.NewAuthenContinue(tq.SetAuthenContinueUserMessage("123456")), tq.AuthenStatusPass, false},
		}
		for i, st := range steps {
			r := tqAuthen(t, tqSend(t, c, tqHeader(tq.Authenticate, 0, 2*i+1, id), st.body))
			if r.Status != st.want || (r.Flags&tq.AuthenReplyFlagNoEcho != 0) != st.noEcho {
				t.Fatalf("step %d: %+v, want %v noecho=%v", i, r, st.want, st.noEcho)
			}
			if st.want == tq.AuthenStatusGetData && string(r.ServerMsg) != "OTP code: " {
				t.Fatalf("prompt not relayed: %q", r.ServerMsg)
			}
		}
	})

	t.Run("authorization", func(t *testing.T) {
		for i, tt := range []struct {
			args tq.Args
			want tq.AuthorStatus
			av   []string
		}{
			{tq.Args{"service=shell", "cmd=show", "cmd-arg=version"}, tq.AuthorStatusPassAdd, []string{"priv-lvl=15"}},
			{tq.Args{"service=shell", "cmd=reload"}, tq.AuthorStatusFail, nil},
		} {
			req := tq.NewAuthorRequest(tq.SetAuthorRequestMethod(tq.AuthenMethodTacacsPlus), tq.SetAuthorRequestPrivLvl(tq.PrivLvlUser),
				tq.SetAuthorRequestType(tq.AuthenTypeASCII), tq.SetAuthorRequestService(tq.AuthenServiceLogin),
				tq.SetAuthorRequestUser("alice"), tq.SetAuthorRequestPort("tty0"), tq.SetAuthorRequestRemAddr("10.1.1.1"),
				tq.SetAuthorRequestArgs(tt.args))
			var r tq.AuthorReply
			if err := tq.Unmarshal(tqSend(t, c, tqHeader(tq.Authorize, 0, 1, tq.SessionID(0x8000+i)), req).Body, &r); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range r.Args {
				got = append(got, string(a))
			}
			if r.Status != tt.want || !slices.Equal(got, tt.av) {
				t.Fatalf("%v: %v %q, want %v %q", tt.args, r.Status, got, tt.want, tt.av)
			}
		}
		recs := srv.Authorizations()
		if len(recs) != 2 || recs[0].User != "alice" || recs[0].Port != "tty0" || recs[0].RemAddr != "10.1.1.1" ||
			!slices.Equal(recs[0].Args, []string{"service=shell", "cmd=show", "cmd-arg=version"}) {
			t.Fatalf("server received %+v", recs)
		}
	})

	t.Run("accounting", func(t *testing.T) {
		for i, flag := range []tq.AcctRequestFlag{tq.AcctFlagStart, tq.AcctFlagStop} {
			req := tq.NewAcctRequest(tq.SetAcctRequestFlag(flag), tq.SetAcctRequestMethod(tq.AuthenMethodTacacsPlus),
				tq.SetAcctRequestPrivLvl(tq.PrivLvlRoot), tq.SetAcctRequestType(tq.AuthenTypeASCII),
				tq.SetAcctRequestService(tq.AuthenServiceLogin), tq.SetAcctRequestUser("alice"),
				tq.SetAcctRequestPort("tty0"), tq.SetAcctRequestRemAddr("10.1.1.1"),
				tq.SetAcctRequestArgs(tq.Args{"task_id=tq-1", "service=shell", "cmd=show version"}))
			var r tq.AcctReply
			if err := tq.Unmarshal(tqSend(t, c, tqHeader(tq.Accounting, 0, 1, tq.SessionID(0x9000+i)), req).Body, &r); err != nil {
				t.Fatal(err)
			}
			if r.Status != tq.AcctReplyStatusSuccess {
				t.Fatalf("record %d: %+v", i, r)
			}
		}
		recs := srv.Accounting()
		if len(recs) != 2 || recs[0].Flags != tacplus.AcctFlagStart || recs[1].Flags != tacplus.AcctFlagStop ||
			recs[0].TaskID != "tq-1" || recs[0].User != "alice" || recs[0].PrivLvl != 15 ||
			!slices.Equal(recs[1].Args, []string{"task_id=tq-1", "service=shell", "cmd=show version"}) {
			t.Fatalf("server received %+v", recs)
		}
	})
	if n := f.counter(f.m.Proxy.Connections); n != 1 {
		t.Errorf("%v connections for one single-connect client", n)
	}
}

// TestSequentialSessions: clients that reuse their connection for the next session, with or without
// asking for single-connect (tacquito's server keeps connections open either way), are served one
// session after the other on it.
func TestSequentialSessions(t *testing.T) {
	srv := backend(t, nil)
	f := startFront(t, AgentBackend(newAgent(t, srv.Addr()), "", ""), nil)
	c := tqClient(t, f.addr)
	for i := range 3 {
		h := tq.NewHeader(tq.SetHeaderVersion(tq.Version{MajorVersion: tq.MajorVersion, MinorVersion: 1}),
			tq.SetHeaderType(tq.Authenticate), tq.SetHeaderSeqNo(1), tq.SetHeaderSessionID(tq.SessionID(500+i)))
		start := tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
			tq.SetAuthenStartType(tq.AuthenTypePAP), tq.SetAuthenStartService(tq.AuthenServiceLogin),
			tq.SetAuthenStartUser("alice"), tq.SetAuthenStartData("alice-pw"))
		resp, err := c.Send(tq.NewPacket(tq.SetPacketHeader(h), tq.SetPacketBodyUnsafe(start)))
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if r := tqAuthen(t, resp); r.Status != tq.AuthenStatusPass {
			t.Fatalf("session %d: %+v", i, r)
		}
	}
	// The same with the flag clear in every header, as tacagent bench's tacquito mode sends them.
	raw := dialRaw(t, f.addr, localKey)
	for i := range 3 {
		raw.send(papHeader(uint32(600+i), 0), papStart("alice", "alice-pw"))
		h, b, err := raw.recv()
		if err != nil || h.SessionID != uint32(600+i) || b.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass {
			t.Fatalf("raw session %d: %v %+v %v", i, h, b, err)
		}
		if h.Flags&tacplus.FlagSingleConnect != 0 {
			t.Fatalf("single-connect echoed to a client that did not ask: %v", h)
		}
	}
	if n := f.counter(f.m.Proxy.Connections); n != 2 {
		t.Errorf("%v connections, want 2", n)
	}
	if st := srv.Stats(); st.AuthenPass != 6 {
		t.Errorf("server %+v", st)
	}
}
