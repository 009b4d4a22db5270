package tacplustest

import (
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// users is the user table of the flow tests.
func users() map[string]User {
	return map[string]User{
		"alice": {Password: "alice-pw", EnablePassword: "alice-enable"},
		"bob":   {Password: "bob-pw", Prompts: []Prompt{{Message: "OTP code: ", Answer: "123456"}}},
		"carol": {Password: "carol-pw", Prompts: []Prompt{
			{Message: "OTP code: ", Answer: "111", NoEcho: true}, {Message: "PIN: ", Answer: "222", NoEcho: true}}},
	}
}

// step is one client packet and the REPLY it must get.
type step struct {
	send     tacplus.Body
	status   tacplus.AuthenStatus
	noEcho   bool
	msg      string // expected server_msg, when not empty
	wantData string // expected data, when not empty
}

var (
	challenge8  = []byte("8bytes!!")
	challenge16 = []byte("sixteen-bytes!!!")
	peer16      = []byte("peer-challenge16")
)

func TestAuthenticationFlows(t *testing.T) {
	mschapv2Good := MSCHAPv2Data(3, challenge16, peer16, "alice", "alice-pw")
	tests := []struct {
		name  string
		typ   tacplus.AuthenType // for the version of the session
		steps []step
	}{
		{"pap pass", tacplus.AuthenTypePAP, []step{{send: papStart("alice", "alice-pw"), status: tacplus.AuthenStatusPass}}},
		{"pap wrong password", tacplus.AuthenTypePAP, []step{{send: papStart("alice", "nope"), status: tacplus.AuthenStatusFail}}},
		{"pap unknown user", tacplus.AuthenTypePAP, []step{{send: papStart("mallory", "x"), status: tacplus.AuthenStatusFail}}},
		{"pap empty password never passes", tacplus.AuthenTypePAP, []step{{send: papStart("alice", ""), status: tacplus.AuthenStatusFail}}},
		{"ascii login with user", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "alice"), status: tacplus.AuthenStatusGetPass, noEcho: true, msg: promptPass},
			{send: cont("alice-pw"), status: tacplus.AuthenStatusPass},
		}},
		{"ascii login GETUSER", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""), status: tacplus.AuthenStatusGetUser, msg: promptUser},
			{send: cont("alice"), status: tacplus.AuthenStatusGetPass, noEcho: true},
			{send: cont("alice-pw"), status: tacplus.AuthenStatusPass},
		}},
		{"ascii login wrong password", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""), status: tacplus.AuthenStatusGetUser},
			{send: cont("alice"), status: tacplus.AuthenStatusGetPass, noEcho: true},
			{send: cont("bob-pw"), status: tacplus.AuthenStatusFail},
		}},
		{"ascii login empty username", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""), status: tacplus.AuthenStatusGetUser},
			{send: cont(""), status: tacplus.AuthenStatusFail},
		}},
		{"ascii login OTP GETDATA echoed", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "bob"), status: tacplus.AuthenStatusGetPass, noEcho: true},
			{send: cont("bob-pw"), status: tacplus.AuthenStatusGetData, noEcho: false, msg: "OTP code: "},
			{send: cont("123456"), status: tacplus.AuthenStatusPass},
		}},
		{"ascii login wrong OTP", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "bob"), status: tacplus.AuthenStatusGetPass, noEcho: true},
			{send: cont("bob-pw"), status: tacplus.AuthenStatusGetData, msg: "OTP code: "},
			{send: cont("654321"), status: tacplus.AuthenStatusFail},
		}},
		{"ascii login two NOECHO prompts", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""), status: tacplus.AuthenStatusGetUser},
			{send: cont("carol"), status: tacplus.AuthenStatusGetPass, noEcho: true},
			{send: cont("carol-pw"), status: tacplus.AuthenStatusGetData, noEcho: true, msg: "OTP code: "},
			{send: cont("111"), status: tacplus.AuthenStatusGetData, noEcho: true, msg: "PIN: "},
			{send: cont("222"), status: tacplus.AuthenStatusPass},
		}},
		{"enable pass", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceEnable, "alice"), status: tacplus.AuthenStatusGetPass, noEcho: true, msg: promptEnable},
			{send: cont("alice-enable"), status: tacplus.AuthenStatusPass},
		}},
		{"enable refuses the login password", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceEnable, "alice"), status: tacplus.AuthenStatusGetPass, noEcho: true},
			{send: cont("alice-pw"), status: tacplus.AuthenStatusFail},
		}},
		{"enable without an enable password", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionLogin, tacplus.ServiceEnable, "bob"), status: tacplus.AuthenStatusGetPass, noEcho: true},
			{send: cont(""), status: tacplus.AuthenStatusFail},
		}},
		{"chpass wrong old password", tacplus.AuthenTypeASCII, []step{
			{send: asciiStart(tacplus.ActionChPass, tacplus.ServiceLogin, "alice"), status: tacplus.AuthenStatusGetPass, noEcho: true, msg: promptOldPass},
			{send: cont("wrong"), status: tacplus.AuthenStatusFail},
		}},
		{"chap pass", tacplus.AuthenTypeCHAP, []step{{send: challengeStart(tacplus.AuthenTypeCHAP, "alice", CHAPData(9, challenge16, "alice-pw")), status: tacplus.AuthenStatusPass}}},
		{"chap fail", tacplus.AuthenTypeCHAP, []step{{send: challengeStart(tacplus.AuthenTypeCHAP, "alice", CHAPData(9, challenge16, "bob-pw")), status: tacplus.AuthenStatusFail}}},
		{"chap malformed", tacplus.AuthenTypeCHAP, []step{{send: challengeStart(tacplus.AuthenTypeCHAP, "alice", "short"), status: tacplus.AuthenStatusError, msg: msgMalformedCHAP}}},
		{"mschapv1 pass", tacplus.AuthenTypeMSCHAP, []step{{send: challengeStart(tacplus.AuthenTypeMSCHAP, "alice", MSCHAPv1Data(1, challenge8, "alice-pw")), status: tacplus.AuthenStatusPass}}},
		{"mschapv1 fail", tacplus.AuthenTypeMSCHAP, []step{{send: challengeStart(tacplus.AuthenTypeMSCHAP, "alice", MSCHAPv1Data(1, challenge8, "x")), status: tacplus.AuthenStatusFail}}},
		{"mschapv1 unknown user", tacplus.AuthenTypeMSCHAP, []step{{send: challengeStart(tacplus.AuthenTypeMSCHAP, "nobody", MSCHAPv1Data(1, challenge8, "")), status: tacplus.AuthenStatusFail}}},
		{"mschapv2 pass with authenticator response", tacplus.AuthenTypeMSCHAPv2, []step{{send: challengeStart(tacplus.AuthenTypeMSCHAPv2, "alice", mschapv2Good),
			status: tacplus.AuthenStatusPass, wantData: MSCHAPv2AuthenticatorResponse(challenge16, peer16, "alice", "alice-pw")}}},
		{"mschapv2 fail", tacplus.AuthenTypeMSCHAPv2, []step{{send: challengeStart(tacplus.AuthenTypeMSCHAPv2, "alice", MSCHAPv2Data(3, challenge16, peer16, "alice", "bad")), status: tacplus.AuthenStatusFail}}},
		{"mschapv2 response for another user", tacplus.AuthenTypeMSCHAPv2, []step{{send: challengeStart(tacplus.AuthenTypeMSCHAPv2, "bob", MSCHAPv2Data(3, challenge16, peer16, "alice", "bob-pw")), status: tacplus.AuthenStatusFail}}},
		{"sendauth unsupported", tacplus.AuthenTypePAP, []step{{send: &tacplus.AuthenStart{Action: tacplus.ActionSendAuth, Type: tacplus.AuthenTypePAP,
			Service: tacplus.ServicePPP, User: "alice"}, status: tacplus.AuthenStatusFail, msg: msgSendAuth}}},
	}
	srv := startServer(t, Config{Users: users()})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, srv.Addr())
			id := uint32(0x1000 + i)
			for n, st := range tt.steps {
				seq := uint8(2*n + 1)
				h := hdr(id, seq, 0)
				if n == 0 {
					h.Version = ver(tt.typ)
				}
				rh, r := c.authen(h, st.send)
				if rh.SeqNo != seq+1 || rh.SessionID != id {
					t.Fatalf("step %d: reply header %v, want seq %d session 0x%x", n, rh, seq+1, id)
				}
				if rh.Version != ver(tt.typ) {
					t.Errorf("step %d: reply version 0x%x does not echo the session's 0x%x", n, rh.Version, ver(tt.typ))
				}
				if r.Status != st.status || r.NoEcho() != st.noEcho {
					t.Fatalf("step %d: %v, want status %v noecho %v", n, r, st.status, st.noEcho)
				}
				if st.msg != "" && r.ServerMsg != st.msg {
					t.Errorf("step %d: server_msg %q, want %q", n, r.ServerMsg, st.msg)
				}
				if st.wantData != "" && r.Data != st.wantData {
					t.Errorf("step %d: data %q, want %q", n, r.Data, st.wantData)
				}
			}
			// Without single-connect the server closes the connection once the session is over.
			c.expectClosed()
		})
	}
}

func challengeStart(t tacplus.AuthenType, user, data string) *tacplus.AuthenStart {
	return &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: t, Service: tacplus.ServicePPP,
		User: user, Port: "tty1", RemAddr: "127.0.0.1", Data: data}
}

// TestChangePassword proves CHPASS (section 5.4.2.7) takes effect for the next login.
func TestChangePassword(t *testing.T) {
	srv := startServer(t, Config{Users: users(), SingleConnect: true})
	c := dial(t, srv.Addr())
	steps := []struct {
		b      tacplus.Body
		status tacplus.AuthenStatus
	}{
		{asciiStart(tacplus.ActionChPass, tacplus.ServiceLogin, ""), tacplus.AuthenStatusGetUser},
		{cont("alice"), tacplus.AuthenStatusGetPass},
		{cont("alice-pw"), tacplus.AuthenStatusGetData},
		{cont("new-pw"), tacplus.AuthenStatusPass},
	}
	for i, st := range steps {
		if _, r := c.authen(hdr(1, uint8(2*i+1), tacplus.FlagSingleConnect), st.b); r.Status != st.status {
			t.Fatalf("step %d: %v, want %v", i, r, st.status)
		}
	}
	if pw, _ := srv.Password("alice"); pw != "new-pw" {
		t.Fatal("password not changed")
	}
	if _, r := c.authen(hdr(2, 1, 0), papStart("alice", "alice-pw")); r.Status != tacplus.AuthenStatusFail {
		t.Errorf("old password: %v, want FAIL", r.Status)
	}
	if _, r := c.authen(hdr(3, 1, 0), papStart("alice", "new-pw")); r.Status != tacplus.AuthenStatusPass {
		t.Errorf("new password: %v, want PASS", r.Status)
	}
}

// TestAbort proves an ABORT ends the session without a reply (section 5.4.4).
func TestAbort(t *testing.T) {
	srv := startServer(t, Config{Users: users(), SingleConnect: true})
	c := dial(t, srv.Addr())
	if _, r := c.authen(hdr(7, 1, tacplus.FlagSingleConnect), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, "")); r.Status != tacplus.AuthenStatusGetUser {
		t.Fatalf("START: %v", r.Status)
	}
	c.send(hdr(7, 3, 0), &tacplus.AuthenContinue{Flags: tacplus.FlagAbort, Data: "user hit ^C"})
	// The next packet's reply is the next thing on the wire: the abort got none.
	if h, r := c.authen(hdr(8, 1, 0), papStart("alice", "alice-pw")); h.SessionID != 8 || r.Status != tacplus.AuthenStatusPass {
		t.Fatalf("after abort: %v %v", h, r.Status)
	}
	// The aborted session is gone: a CONTINUE for it is out of place.
	if _, r := c.authen(hdr(7, 5, 0), cont("x")); r.Status != tacplus.AuthenStatusError {
		t.Errorf("CONTINUE after abort: %v, want ERROR", r.Status)
	}
	if st := srv.Stats(); st.Aborts != 1 || st.ProtocolErrors != 1 {
		t.Errorf("stats %+v, want 1 abort and 1 protocol error", st)
	}
}

// TestProtocolErrors covers packets that do not fit their session, and a client with the wrong key.
func TestProtocolErrors(t *testing.T) {
	srv := startServer(t, Config{Users: users(), SingleConnect: true})
	c := dial(t, srv.Addr())
	steps := []struct {
		name string
		h    tacplus.Header
		b    tacplus.Body
		want tacplus.AuthenStatus
	}{
		{"start", hdr(1, 1, tacplus.FlagSingleConnect), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""), tacplus.AuthenStatusGetUser},
		{"wrong seq_no", hdr(1, 5, 0), cont("alice"), tacplus.AuthenStatusError},
		{"continue without session", hdr(2, 3, 0), cont("alice"), tacplus.AuthenStatusError},
		{"start", hdr(3, 1, 0), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""), tacplus.AuthenStatusGetUser},
		{"session_id reused by a START", hdr(3, 1, 0), asciiStart(tacplus.ActionLogin, tacplus.ServiceLogin, ""), tacplus.AuthenStatusError},
		{"still serving", hdr(4, 1, 0), papStart("alice", "alice-pw"), tacplus.AuthenStatusPass},
	}
	for _, st := range steps {
		if st.h.SeqNo == 1 {
			st.h.Version = tacplus.DefaultVersion(st.b)
		}
		if _, r := c.authen(st.h, st.b); r.Status != st.want {
			t.Fatalf("%s: %v, want %v", st.name, r.Status, st.want)
		}
	}
	if got := srv.Stats().ProtocolErrors; got != 3 {
		t.Errorf("ProtocolErrors = %d, want 3", got)
	}

	// A client with another key: the server cannot decode the START and answers ERROR under its own key,
	// which that client in turn cannot decode.
	bad := dialKey(t, srv.Addr(), []byte("other-key"))
	bad.send(hdr(9, 1, 0), papStart("alice", "alice-pw"))
	if _, _, err := bad.recv(); tacplus.ClassOf(err) != tacplus.ErrBadSecret {
		t.Errorf("reply to a wrong-key client: %v, want a bad-secret error", err)
	}
	if got := srv.Stats().BadPackets; got != 1 {
		t.Errorf("BadPackets = %d, want 1", got)
	}
}
