package tacplustest

import (
	"slices"
	"testing"

	tq "github.com/facebookincubator/tacquito"

	"github.com/tacagent/tacagent/tacplus"
)

// Interop with a real client: tacquito's client package (docs/architecture.md). Each test drives the server
// only through tacquito's own packet types and decoders.

func tqClient(t *testing.T, addr string) *tq.Client {
	t.Helper()
	c, err := tq.NewClient(tq.SetClientDialer("tcp", addr, testKey))
	if err != nil {
		t.Fatalf("tacquito client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tqHeader(typ tq.HeaderType, minor uint8, seq int, id tq.SessionID, flags tq.HeaderFlag) *tq.Header {
	return tq.NewHeader(
		tq.SetHeaderVersion(tq.Version{MajorVersion: tq.MajorVersion, MinorVersion: minor}),
		tq.SetHeaderType(typ), tq.SetHeaderSeqNo(seq), tq.SetHeaderSessionID(id), tq.SetHeaderFlag(flags))
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
	return resp
}

func tqAuthenReply(t *testing.T, p *tq.Packet) tq.AuthenReply {
	t.Helper()
	var r tq.AuthenReply
	if err := tq.Unmarshal(p.Body, &r); err != nil {
		t.Fatalf("tacquito cannot decode the REPLY: %v", err)
	}
	return r
}

func tqPAP(user, password string) *tq.AuthenStart {
	return tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
		tq.SetAuthenStartType(tq.AuthenTypePAP), tq.SetAuthenStartService(tq.AuthenServiceLogin),
		tq.SetAuthenStartUser(tq.AuthenUser(user)), tq.SetAuthenStartPort("tty0"),
		tq.SetAuthenStartRemAddr("127.0.0.1"), tq.SetAuthenStartData(tq.AuthenData(password)))
}

func TestInteropTacquitoPAP(t *testing.T) {
	srv := startServer(t, Config{Users: users()}) // a classic server: one session per connection
	tests := []struct {
		user, password string
		want           tq.AuthenStatus
	}{
		{"alice", "alice-pw", tq.AuthenStatusPass},
		{"alice", "wrong", tq.AuthenStatusFail},
		{"nobody", "x", tq.AuthenStatusFail},
	}
	for i, tt := range tests {
		c := tqClient(t, srv.Addr())
		resp := tqSend(t, c, tqHeader(tq.Authenticate, 1, 1, tq.SessionID(1000+i), 0), tqPAP(tt.user, tt.password))
		if r := tqAuthenReply(t, resp); r.Status != tt.want {
			t.Errorf("%s: %v, want %v", tt.user, r.Status, tt.want)
		}
	}
	if st := srv.Stats(); st.AuthenPass != 1 || st.AuthenFail != 2 {
		t.Errorf("server saw pass=%d fail=%d", st.AuthenPass, st.AuthenFail)
	}
}

func TestInteropTacquitoASCII(t *testing.T) {
	srv := startServer(t, Config{Users: users(), SingleConnect: true})
	c := tqClient(t, srv.Addr())
	const id = tq.SessionID(12345)
	start := tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser),
		tq.SetAuthenStartType(tq.AuthenTypeASCII), tq.SetAuthenStartService(tq.AuthenServiceLogin),
		tq.SetAuthenStartPort("tty0"), tq.SetAuthenStartRemAddr("127.0.0.1"))
	steps := []struct {
		body      tq.EncoderDecoder
		want      tq.AuthenStatus
		noEcho    bool
		serverMsg string
	}{
		{start, tq.AuthenStatusGetUser, false, promptUser},
		{tq.NewAuthenContinue(tq.SetAuthenContinueUserMessage("bob")), tq.AuthenStatusGetPass, true, promptPass},
		{tq.NewAuthenContinue(tq.SetAuthenContinueUserMessage("bob-pw")), tq.AuthenStatusGetData, false, "OTP code: "},
		{tq.NewAuthenContinue(tq.SetAuthenContinueUserMessage("123456")), tq.AuthenStatusPass, false, ""},
	}
	for i, st := range steps {
		var flags tq.HeaderFlag
		if i == 0 {
			flags = tq.SingleConnect
		}
		resp := tqSend(t, c, tqHeader(tq.Authenticate, 0, 2*i+1, id, flags), st.body)
		if i == 0 && resp.Header.Flags&tq.SingleConnect == 0 {
			t.Error("single-connect not echoed to tacquito")
		}
		r := tqAuthenReply(t, resp)
		if r.Status != st.want || (r.Flags&tq.AuthenReplyFlagNoEcho != 0) != st.noEcho || string(r.ServerMsg) != st.serverMsg {
			t.Fatalf("step %d: %+v, want %v noecho=%v msg=%q", i, r, st.want, st.noEcho, st.serverMsg)
		}
	}
	// The connection stays open for the next session: a wrong password this time.
	resp := tqSend(t, c, tqHeader(tq.Authenticate, 0, 1, id+1, 0),
		tq.NewAuthenStart(tq.SetAuthenStartAction(tq.AuthenActionLogin), tq.SetAuthenStartType(tq.AuthenTypeASCII),
			tq.SetAuthenStartService(tq.AuthenServiceLogin), tq.SetAuthenStartUser("alice"), tq.SetAuthenStartPrivLvl(tq.PrivLvlUser)))
	if r := tqAuthenReply(t, resp); r.Status != tq.AuthenStatusGetPass {
		t.Fatalf("second session START: %+v", r)
	}
	resp = tqSend(t, c, tqHeader(tq.Authenticate, 0, 3, id+1, 0), tq.NewAuthenContinue(tq.SetAuthenContinueUserMessage("nope")))
	if r := tqAuthenReply(t, resp); r.Status != tq.AuthenStatusFail {
		t.Fatalf("wrong password: %+v", r)
	}
}

func TestInteropTacquitoAuthorization(t *testing.T) {
	srv := startServer(t, Config{Users: users(), AuthorRules: authorRules(), KeepOpen: true})
	c := tqClient(t, srv.Addr())
	tests := []struct {
		name string
		user string
		args tq.Args
		want tq.AuthorStatus
		av   []string
		msg  string
	}{
		{"permit with AV pairs", "alice", tq.Args{"service=shell", "cmd=show", "cmd-arg=version"}, tq.AuthorStatusPassAdd,
			[]string{"priv-lvl=15", "timeout=60"}, ""},
		{"deny", "alice", tq.Args{"service=shell", "cmd=reload"}, tq.AuthorStatusFail, nil, "reload is not allowed"},
		{"deny unknown user", "nobody", tq.Args{"service=shell", "cmd="}, tq.AuthorStatusFail, nil, msgNoUser},
	}
	for i, tt := range tests {
		req := tq.NewAuthorRequest(tq.SetAuthorRequestMethod(tq.AuthenMethodTacacsPlus), tq.SetAuthorRequestPrivLvl(tq.PrivLvlUser),
			tq.SetAuthorRequestType(tq.AuthenTypeASCII), tq.SetAuthorRequestService(tq.AuthenServiceLogin),
			tq.SetAuthorRequestUser(tq.AuthenUser(tt.user)), tq.SetAuthorRequestPort("tty0"),
			tq.SetAuthorRequestRemAddr("127.0.0.1"), tq.SetAuthorRequestArgs(tt.args))
		resp := tqSend(t, c, tqHeader(tq.Authorize, 0, 1, tq.SessionID(2000+i), 0), req)
		var r tq.AuthorReply
		if err := tq.Unmarshal(resp.Body, &r); err != nil {
			t.Fatalf("%s: tacquito cannot decode the RESPONSE: %v", tt.name, err)
		}
		var av []string
		for _, a := range r.Args {
			av = append(av, string(a))
		}
		if r.Status != tt.want || !slices.Equal(av, tt.av) || string(r.ServerMsg) != tt.msg {
			t.Errorf("%s: %v %q %q, want %v %q %q", tt.name, r.Status, av, r.ServerMsg, tt.want, tt.av, tt.msg)
		}
	}
}

func TestInteropTacquitoAccounting(t *testing.T) {
	srv := startServer(t, Config{Users: users(), KeepOpen: true})
	c := tqClient(t, srv.Addr())
	records := []struct {
		flag tq.AcctRequestFlag
		args tq.Args
	}{
		{tq.AcctFlagStart, tq.Args{"task_id=42", "service=shell", "start_time=1700000000"}},
		{tq.AcctFlagStop, tq.Args{"task_id=42", "service=shell", "stop_time=1700000060", "elapsed_time=60"}},
	}
	for i, rec := range records {
		req := tq.NewAcctRequest(tq.SetAcctRequestFlag(rec.flag), tq.SetAcctRequestMethod(tq.AuthenMethodTacacsPlus),
			tq.SetAcctRequestPrivLvl(tq.PrivLvlRoot), tq.SetAcctRequestType(tq.AuthenTypeASCII),
			tq.SetAcctRequestService(tq.AuthenServiceLogin), tq.SetAcctRequestUser("alice"),
			tq.SetAcctRequestPort("tty0"), tq.SetAcctRequestRemAddr("127.0.0.1"), tq.SetAcctRequestArgs(rec.args))
		resp := tqSend(t, c, tqHeader(tq.Accounting, 0, 1, tq.SessionID(3000+i), 0), req)
		var r tq.AcctReply
		if err := tq.Unmarshal(resp.Body, &r); err != nil {
			t.Fatalf("tacquito cannot decode the accounting REPLY: %v", err)
		}
		if r.Status != tq.AcctReplyStatusSuccess {
			t.Errorf("record %d: %v", i, r.Status)
		}
	}
	got := srv.Accounting()
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	for i, r := range got {
		if r.TaskID != "42" || r.User != "alice" || r.SessionID != uint32(3000+i) || r.Flags != tacplus.AcctFlag(records[i].flag) ||
			len(r.Args) != len(records[i].args) {
			t.Errorf("record %d: %+v", i, r)
		}
	}
}
