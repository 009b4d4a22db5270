package fsm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// Shorthands for the tables.
const (
	aIdle      = fsm.AuthenIdle
	aStartSent = fsm.AuthenStartSent
	aAwaitUser = fsm.AuthenAwaitUser
	aContSent  = fsm.AuthenContinueSent
	aDone      = fsm.AuthenDone
)

var (
	errUnexpected = fsm.ErrUnexpectedEvent
	errFinished   = fsm.ErrFinished
	errProto      = tacplus.ErrProtocol
	errSecret     = tacplus.ErrBadSecret
	errTimeout    = tacplus.ErrTimeout
	errLost       = tacplus.ErrConnectionLost
	errAborted    = tacplus.ErrAborted
	errServer     = tacplus.ErrServerError
	errAuthFailed = tacplus.ErrAuthenticationFailed
	errDenied     = tacplus.ErrDenied
)

var authenEvents = []string{
	evStart, "PASS", "FAIL", "GETDATA", "GETUSER", "GETPASS", "RESTART", "ERROR", "FOLLOW", evErrorOtherVer,
	evWrongSeq, evWrongSession, evWrongType, evWrongBody, evWrongVersion, evUndecodable, evBadSecret,
	evInput, evTimeout, evLost, evAbort,
}

// asciiTable is the authentication machine for ASCII login, ENABLE and CHPASS (RFC 8907 sections 5.4.2.1,
// 5.4.2.6, 5.4.2.7): the server drives prompts until PASS, FAIL or ERROR.
var asciiTable = []row[fsm.AuthenState]{
	{aIdle, evStart, aStartSent, "send START", nil},
	{aIdle, "PASS", aIdle, fxRefused, errUnexpected},
	{aIdle, "FAIL", aIdle, fxRefused, errUnexpected},
	{aIdle, "GETDATA", aIdle, fxRefused, errUnexpected},
	{aIdle, "GETUSER", aIdle, fxRefused, errUnexpected},
	{aIdle, "GETPASS", aIdle, fxRefused, errUnexpected},
	{aIdle, "RESTART", aIdle, fxRefused, errUnexpected},
	{aIdle, "ERROR", aIdle, fxRefused, errUnexpected},
	{aIdle, "FOLLOW", aIdle, fxRefused, errUnexpected},
	{aIdle, evErrorOtherVer, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongSeq, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongSession, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongType, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongBody, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongVersion, aIdle, fxRefused, errUnexpected},
	{aIdle, evUndecodable, aIdle, fxRefused, errUnexpected},
	{aIdle, evBadSecret, aIdle, fxRefused, errUnexpected},
	{aIdle, evInput, aIdle, fxRefused, errUnexpected},
	{aIdle, evTimeout, aDone, fxComplete, errTimeout},
	{aIdle, evLost, aDone, fxComplete, errLost},
	{aIdle, evAbort, aDone, fxComplete, errAborted},

	{aStartSent, evStart, aStartSent, fxRefused, errUnexpected},
	{aStartSent, "PASS", aDone, fxComplete, nil},
	{aStartSent, "FAIL", aDone, fxComplete, errAuthFailed},
	{aStartSent, "GETDATA", aAwaitUser, "prompt GETDATA", nil},
	{aStartSent, "GETUSER", aAwaitUser, "prompt GETUSER", nil},
	{aStartSent, "GETPASS", aAwaitUser, "prompt GETPASS noecho", nil},
	{aStartSent, "RESTART", aDone, fxComplete, errAuthFailed},
	{aStartSent, "ERROR", aDone, fxComplete, errServer},
	{aStartSent, "FOLLOW", aDone, fxComplete, errAuthFailed},
	{aStartSent, evErrorOtherVer, aDone, fxComplete, errServer},
	{aStartSent, evWrongSeq, aDone, fxComplete, errProto},
	{aStartSent, evWrongSession, aDone, fxComplete, errProto},
	{aStartSent, evWrongType, aDone, fxComplete, errProto},
	{aStartSent, evWrongBody, aDone, fxComplete, errProto},
	{aStartSent, evWrongVersion, aDone, fxComplete, errProto},
	{aStartSent, evUndecodable, aDone, fxComplete, errProto},
	{aStartSent, evBadSecret, aDone, fxComplete, errSecret},
	{aStartSent, evInput, aStartSent, fxRefused, errUnexpected},
	{aStartSent, evTimeout, aDone, fxComplete, errTimeout},
	{aStartSent, evLost, aDone, fxComplete, errLost},
	{aStartSent, evAbort, aDone, fxComplete, errAborted}, // the server holds the turn: no CONTINUE possible

	{aAwaitUser, evStart, aAwaitUser, fxRefused, errUnexpected},
	{aAwaitUser, "PASS", aDone, fxComplete, errProto}, // the client holds the turn
	{aAwaitUser, "FAIL", aDone, fxComplete, errProto},
	{aAwaitUser, "GETDATA", aDone, fxComplete, errProto},
	{aAwaitUser, "GETUSER", aDone, fxComplete, errProto},
	{aAwaitUser, "GETPASS", aDone, fxComplete, errProto},
	{aAwaitUser, "RESTART", aDone, fxComplete, errProto},
	{aAwaitUser, "ERROR", aDone, fxComplete, errProto},
	{aAwaitUser, "FOLLOW", aDone, fxComplete, errProto},
	{aAwaitUser, evErrorOtherVer, aDone, fxComplete, errProto},
	{aAwaitUser, evWrongSeq, aDone, fxComplete, errProto},
	{aAwaitUser, evWrongSession, aDone, fxComplete, errProto},
	{aAwaitUser, evWrongType, aDone, fxComplete, errProto},
	{aAwaitUser, evWrongBody, aDone, fxComplete, errProto},
	{aAwaitUser, evWrongVersion, aDone, fxComplete, errProto},
	{aAwaitUser, evUndecodable, aDone, fxComplete, errProto},
	{aAwaitUser, evBadSecret, aDone, fxComplete, errSecret},
	{aAwaitUser, evInput, aContSent, "send CONTINUE", nil},
	{aAwaitUser, evTimeout, aDone, "send CONTINUE(ABORT); complete", errTimeout},
	{aAwaitUser, evLost, aDone, fxComplete, errLost},
	{aAwaitUser, evAbort, aDone, "send CONTINUE(ABORT); complete", errAborted},

	{aContSent, evStart, aContSent, fxRefused, errUnexpected},
	{aContSent, "PASS", aDone, fxComplete, nil},
	{aContSent, "FAIL", aDone, fxComplete, errAuthFailed},
	{aContSent, "GETDATA", aAwaitUser, "prompt GETDATA", nil},
	{aContSent, "GETUSER", aAwaitUser, "prompt GETUSER", nil},
	{aContSent, "GETPASS", aAwaitUser, "prompt GETPASS noecho", nil},
	{aContSent, "RESTART", aDone, fxComplete, errAuthFailed},
	{aContSent, "ERROR", aDone, fxComplete, errServer},
	{aContSent, "FOLLOW", aDone, fxComplete, errAuthFailed},
	{aContSent, evErrorOtherVer, aDone, fxComplete, errServer},
	{aContSent, evWrongSeq, aDone, fxComplete, errProto},
	{aContSent, evWrongSession, aDone, fxComplete, errProto},
	{aContSent, evWrongType, aDone, fxComplete, errProto},
	{aContSent, evWrongBody, aDone, fxComplete, errProto},
	{aContSent, evWrongVersion, aDone, fxComplete, errProto},
	{aContSent, evUndecodable, aDone, fxComplete, errProto},
	{aContSent, evBadSecret, aDone, fxComplete, errSecret},
	{aContSent, evInput, aContSent, fxRefused, errUnexpected},
	{aContSent, evTimeout, aDone, fxComplete, errTimeout},
	{aContSent, evLost, aDone, fxComplete, errLost},
	{aContSent, evAbort, aDone, fxComplete, errAborted},

	{aDone, evStart, aDone, fxRefused, errFinished},
	{aDone, "PASS", aDone, fxRefused, errFinished},
	{aDone, "FAIL", aDone, fxRefused, errFinished},
	{aDone, "GETDATA", aDone, fxRefused, errFinished},
	{aDone, "GETUSER", aDone, fxRefused, errFinished},
	{aDone, "GETPASS", aDone, fxRefused, errFinished},
	{aDone, "RESTART", aDone, fxRefused, errFinished},
	{aDone, "ERROR", aDone, fxRefused, errFinished},
	{aDone, "FOLLOW", aDone, fxRefused, errFinished},
	{aDone, evErrorOtherVer, aDone, fxRefused, errFinished},
	{aDone, evWrongSeq, aDone, fxRefused, errFinished},
	{aDone, evWrongSession, aDone, fxRefused, errFinished},
	{aDone, evWrongType, aDone, fxRefused, errFinished},
	{aDone, evWrongBody, aDone, fxRefused, errFinished},
	{aDone, evWrongVersion, aDone, fxRefused, errFinished},
	{aDone, evUndecodable, aDone, fxRefused, errFinished},
	{aDone, evBadSecret, aDone, fxRefused, errFinished},
	{aDone, evInput, aDone, fxRefused, errFinished},
	{aDone, evTimeout, aDone, fxRefused, errFinished},
	{aDone, evLost, aDone, fxRefused, errFinished},
	{aDone, evAbort, aDone, fxRefused, errFinished},
}

// singleReplyTable is the authentication machine for PAP, CHAP, MS-CHAP and MS-CHAP-V2 (sections 5.4.2.2
// to 5.4.2.5): one START, one REPLY, so a prompt is a protocol error and AwaitUser/ContinueSent are never
// reached.
var singleReplyTable = []row[fsm.AuthenState]{
	{aIdle, evStart, aStartSent, "send START", nil},
	{aIdle, "PASS", aIdle, fxRefused, errUnexpected},
	{aIdle, "FAIL", aIdle, fxRefused, errUnexpected},
	{aIdle, "GETDATA", aIdle, fxRefused, errUnexpected},
	{aIdle, "GETUSER", aIdle, fxRefused, errUnexpected},
	{aIdle, "GETPASS", aIdle, fxRefused, errUnexpected},
	{aIdle, "RESTART", aIdle, fxRefused, errUnexpected},
	{aIdle, "ERROR", aIdle, fxRefused, errUnexpected},
	{aIdle, "FOLLOW", aIdle, fxRefused, errUnexpected},
	{aIdle, evErrorOtherVer, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongSeq, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongSession, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongType, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongBody, aIdle, fxRefused, errUnexpected},
	{aIdle, evWrongVersion, aIdle, fxRefused, errUnexpected},
	{aIdle, evUndecodable, aIdle, fxRefused, errUnexpected},
	{aIdle, evBadSecret, aIdle, fxRefused, errUnexpected},
	{aIdle, evInput, aIdle, fxRefused, errUnexpected},
	{aIdle, evTimeout, aDone, fxComplete, errTimeout},
	{aIdle, evLost, aDone, fxComplete, errLost},
	{aIdle, evAbort, aDone, fxComplete, errAborted},

	{aStartSent, evStart, aStartSent, fxRefused, errUnexpected},
	{aStartSent, "PASS", aDone, fxComplete, nil},
	{aStartSent, "FAIL", aDone, fxComplete, errAuthFailed},
	{aStartSent, "GETDATA", aDone, fxComplete, errProto},
	{aStartSent, "GETUSER", aDone, fxComplete, errProto},
	{aStartSent, "GETPASS", aDone, fxComplete, errProto},
	{aStartSent, "RESTART", aDone, fxComplete, errAuthFailed},
	{aStartSent, "ERROR", aDone, fxComplete, errServer},
	{aStartSent, "FOLLOW", aDone, fxComplete, errAuthFailed},
	{aStartSent, evErrorOtherVer, aDone, fxComplete, errServer},
	{aStartSent, evWrongSeq, aDone, fxComplete, errProto},
	{aStartSent, evWrongSession, aDone, fxComplete, errProto},
	{aStartSent, evWrongType, aDone, fxComplete, errProto},
	{aStartSent, evWrongBody, aDone, fxComplete, errProto},
	{aStartSent, evWrongVersion, aDone, fxComplete, errProto},
	{aStartSent, evUndecodable, aDone, fxComplete, errProto},
	{aStartSent, evBadSecret, aDone, fxComplete, errSecret},
	{aStartSent, evInput, aStartSent, fxRefused, errUnexpected},
	{aStartSent, evTimeout, aDone, fxComplete, errTimeout},
	{aStartSent, evLost, aDone, fxComplete, errLost},
	{aStartSent, evAbort, aDone, fxComplete, errAborted},

	{aDone, evStart, aDone, fxRefused, errFinished},
	{aDone, "PASS", aDone, fxRefused, errFinished},
	{aDone, "FAIL", aDone, fxRefused, errFinished},
	{aDone, "GETDATA", aDone, fxRefused, errFinished},
	{aDone, "GETUSER", aDone, fxRefused, errFinished},
	{aDone, "GETPASS", aDone, fxRefused, errFinished},
	{aDone, "RESTART", aDone, fxRefused, errFinished},
	{aDone, "ERROR", aDone, fxRefused, errFinished},
	{aDone, "FOLLOW", aDone, fxRefused, errFinished},
	{aDone, evErrorOtherVer, aDone, fxRefused, errFinished},
	{aDone, evWrongSeq, aDone, fxRefused, errFinished},
	{aDone, evWrongSession, aDone, fxRefused, errFinished},
	{aDone, evWrongType, aDone, fxRefused, errFinished},
	{aDone, evWrongBody, aDone, fxRefused, errFinished},
	{aDone, evWrongVersion, aDone, fxRefused, errFinished},
	{aDone, evUndecodable, aDone, fxRefused, errFinished},
	{aDone, evBadSecret, aDone, fxRefused, errFinished},
	{aDone, evInput, aDone, fxRefused, errFinished},
	{aDone, evTimeout, aDone, fxRefused, errFinished},
	{aDone, evLost, aDone, fxRefused, errFinished},
	{aDone, evAbort, aDone, fxRefused, errFinished},
}

var authenStatuses = map[string]tacplus.AuthenStatus{
	"PASS": tacplus.AuthenStatusPass, "FAIL": tacplus.AuthenStatusFail, "GETDATA": tacplus.AuthenStatusGetData,
	"GETUSER": tacplus.AuthenStatusGetUser, "GETPASS": tacplus.AuthenStatusGetPass,
	"RESTART": tacplus.AuthenStatusRestart, "ERROR": tacplus.AuthenStatusError, "FOLLOW": tacplus.AuthenStatusFollow,
}

func authenReply(status string) tacplus.Body {
	s, ok := authenStatuses[status]
	if !ok {
		panic("no authentication status " + status)
	}
	return &tacplus.AuthenReply{Status: s, ServerMsg: "server says " + status}
}

func authenHarness(cfg fsm.AuthenConfig, states []fsm.AuthenState) harness[fsm.AuthenState] {
	return harness[fsm.AuthenState]{
		states: states,
		events: authenEvents,
		state:  func(m fsm.Machine) fsm.AuthenState { return m.(*fsm.Authen).State() },
		reach: func(t *testing.T, s fsm.AuthenState) *driven {
			m, err := fsm.NewAuthen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			d := &driven{m: m, sid: cfg.SessionID, ptype: tacplus.TypeAuthen}
			if s == aIdle {
				return d
			}
			d.version = d.step(t, fsm.Start())[0].Header.Version
			switch s {
			case aAwaitUser, aContSent:
				d.step(t, fsm.Packet(d.header(2), authenReply("GETPASS")))
				if s == aContSent {
					d.step(t, fsm.Input([]byte("secret")))
				}
			case aDone:
				d.step(t, fsm.Packet(d.header(2), authenReply("PASS")))
			}
			return d
		},
		packet: func(d *driven, event string) fsm.Event {
			if d.version == 0 { // Idle: no START yet, but packets must still look like this session's
				min, _ := tacplus.StartMinorVersion(orLogin(cfg.Action), orASCII(cfg.Type))
				d.version = tacplus.VersionByte(min)
			}
			return commonPacket(d, event, authenReply, &tacplus.AuthorResponse{Status: tacplus.AuthorStatusPassAdd})
		},
	}
}

func orLogin(a tacplus.AuthenAction) tacplus.AuthenAction {
	if a == 0 {
		return tacplus.ActionLogin
	}
	return a
}

func orASCII(t tacplus.AuthenType) tacplus.AuthenType {
	if t == 0 {
		return tacplus.AuthenTypeASCII
	}
	return t
}

// asciiNamedUserTable is asciiTable for a START that named the user: the machine answers GETUSER itself
// with that user (issue 13 point 2: the server cannot change who logs in), no prompt reaches the caller.
func asciiNamedUserTable() []row[fsm.AuthenState] {
	out := make([]row[fsm.AuthenState], len(asciiTable))
	for i, r := range asciiTable {
		if r.event == "GETUSER" && (r.from == aStartSent || r.from == aContSent) {
			r = row[fsm.AuthenState]{r.from, "GETUSER", aContSent, "send CONTINUE", nil}
		}
		out[i] = r
	}
	return out
}

func TestAuthenTransitions(t *testing.T) {
	all := fsm.AuthenStates()
	single := []fsm.AuthenState{aIdle, aStartSent, aDone}
	ch8 := []byte("01234567")
	ch16 := []byte("0123456789abcdef")
	variants := []struct {
		name   string
		cfg    fsm.AuthenConfig
		states []fsm.AuthenState
		table  []row[fsm.AuthenState]
	}{
		{"ascii-login", fsm.AuthenConfig{}, all, asciiTable},
		{"ascii-login-user", fsm.AuthenConfig{User: "alice"}, all, asciiNamedUserTable()},
		{"ascii-enable", fsm.AuthenConfig{Service: tacplus.ServiceEnable, PrivLvl: 15, User: "alice"}, all, asciiNamedUserTable()},
		{"ascii-chpass", fsm.AuthenConfig{Action: tacplus.ActionChPass, User: "alice"}, all, asciiNamedUserTable()},
		{"pap", fsm.AuthenConfig{Type: tacplus.AuthenTypePAP, User: "alice", Password: []byte("pw")}, single, singleReplyTable},
		{"pap-enable", fsm.AuthenConfig{Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceEnable, PrivLvl: 15, User: "alice", Password: []byte("pw")}, single, singleReplyTable},
		{"chap", fsm.AuthenConfig{Type: tacplus.AuthenTypeCHAP, User: "alice", Password: []byte("pw"), Challenge: ch8}, single, singleReplyTable},
		{"mschap", fsm.AuthenConfig{Type: tacplus.AuthenTypeMSCHAP, User: "alice", Password: []byte("pw"), Challenge: ch8}, single, singleReplyTable},
		{"mschapv2", fsm.AuthenConfig{Type: tacplus.AuthenTypeMSCHAPv2, User: "alice", Password: []byte("pw"), Challenge: ch16, PeerChallenge: ch16}, single, singleReplyTable},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			cfg := v.cfg
			cfg.SessionID = 0x5eed1234
			runTable(t, authenHarness(cfg, v.states), v.table)
		})
	}
}

// The session ends before seq_no reaches 255 (RFC 8907 section 4.1): a server that prompts forever gets
// a protocol error after its reply at seq_no 254, and no packet above 253 is ever sent.
func TestAuthenSequenceNeverWraps(t *testing.T) {
	m, err := fsm.NewAuthen(fsm.AuthenConfig{SessionID: 7, MaxPrompts: -1})
	if err != nil {
		t.Fatal(err)
	}
	effs, _ := m.Step(fsm.Start())
	prompts := 0
	for steps := 0; steps < 300; steps++ {
		var last fsm.Effect
		for _, e := range effs {
			if e.Kind == fsm.EffectSend && e.Header.SeqNo > 253 {
				t.Fatalf("sent seq_no %d", e.Header.SeqNo)
			}
			last = e
		}
		switch last.Kind {
		case fsm.EffectComplete:
			if !errors.Is(last.Err, tacplus.ErrProtocol) || tacplus.ReasonOf(last.Err) != tacplus.ReasonSeq {
				t.Fatalf("completed with %v, want a seq_no protocol error", last.Err)
			}
			if prompts != 126 {
				t.Errorf("%d prompts answered, want 126 (CONTINUEs 3..253)", prompts)
			}
			return
		case fsm.EffectSend:
			h := tacplus.Header{Version: last.Header.Version, Type: tacplus.TypeAuthen, SeqNo: last.Header.SeqNo + 1, SessionID: 7}
			effs, err = m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetData, ServerMsg: "more: "}))
		case fsm.EffectPrompt:
			prompts++
			effs, err = m.Step(fsm.Input([]byte("x")))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the session never ended")
}

func TestAuthenConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  fsm.AuthenConfig
	}{
		{"zero session", fsm.AuthenConfig{}},
		{"sendauth", fsm.AuthenConfig{Action: tacplus.ActionSendAuth, Type: tacplus.AuthenTypePAP, User: "a", Password: []byte("p")}},
		{"chpass pap", fsm.AuthenConfig{Action: tacplus.ActionChPass, Type: tacplus.AuthenTypePAP, User: "a", Password: []byte("p")}},
		{"arap", fsm.AuthenConfig{Type: tacplus.AuthenTypeARAP, User: "a"}},
		{"enable chpass", fsm.AuthenConfig{Action: tacplus.ActionChPass, Service: tacplus.ServiceEnable}},
		{"pap no user", fsm.AuthenConfig{Type: tacplus.AuthenTypePAP, Password: []byte("p")}},
		{"pap no password", fsm.AuthenConfig{Type: tacplus.AuthenTypePAP, User: "a"}},
		{"pap long password", fsm.AuthenConfig{Type: tacplus.AuthenTypePAP, User: "a", Password: []byte(strings.Repeat("p", 256))}},
		{"chap no challenge", fsm.AuthenConfig{Type: tacplus.AuthenTypeCHAP, User: "a", Password: []byte("p")}},
		{"chap no user", fsm.AuthenConfig{Type: tacplus.AuthenTypeCHAP, Password: []byte("p"), Challenge: []byte("12345678")}},
		{"chap long challenge", fsm.AuthenConfig{Type: tacplus.AuthenTypeCHAP, User: "a", Password: []byte("p"), Challenge: make([]byte, 239)}},
		{"mschap 16-byte challenge", fsm.AuthenConfig{Type: tacplus.AuthenTypeMSCHAP, User: "a", Password: []byte("p"), Challenge: make([]byte, 16)}},
		{"mschapv2 8-byte challenge", fsm.AuthenConfig{Type: tacplus.AuthenTypeMSCHAPv2, User: "a", Password: []byte("p"), Challenge: make([]byte, 8), PeerChallenge: make([]byte, 16)}},
		{"mschapv2 no peer challenge", fsm.AuthenConfig{Type: tacplus.AuthenTypeMSCHAPv2, User: "a", Password: []byte("p"), Challenge: make([]byte, 16)}},
		{"priv 16", fsm.AuthenConfig{PrivLvl: 16}},
		{"user with space", fsm.AuthenConfig{User: "a b"}},
		{"port control char", fsm.AuthenConfig{Port: "tty\x1b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if tt.name != "zero session" {
				cfg.SessionID = 1
			}
			m, err := fsm.NewAuthen(cfg)
			if m != nil || !errors.Is(err, tacplus.ErrConfig) {
				t.Fatalf("NewAuthen = %v, %v; want an ErrConfig error", m, err)
			}
			if strings.Contains(err.Error(), strings.Repeat("p", 5)) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	// CHAP's challenge may be as long as the data field allows.
	if _, err := fsm.NewAuthen(fsm.AuthenConfig{SessionID: 1, Type: tacplus.AuthenTypeCHAP, User: "a", Password: []byte("p"), Challenge: make([]byte, 238)}); err != nil {
		t.Errorf("238-byte CHAP challenge refused: %v", err)
	}
}

// Input too long for user_msg is refused and leaves the prompt pending.
func TestAuthenInputTooLong(t *testing.T) {
	m, _ := fsm.NewAuthen(fsm.AuthenConfig{SessionID: 9})
	start, _ := m.Step(fsm.Start())
	h := start[0].Header
	h.SeqNo = 2
	if _, err := m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetData})); err != nil {
		t.Fatal(err)
	}
	effs, err := m.Step(fsm.Input(make([]byte, 0x10000)))
	if effs != nil || !errors.Is(err, fsm.ErrUnexpectedEvent) || m.State() != fsm.AuthenAwaitUser {
		t.Fatalf("Step = %v, %v in %s; want refused in AwaitUser", effs, err, m.State())
	}
	if effs, err = m.Step(fsm.Input(make([]byte, 0xffff))); err != nil || len(effs) != 1 {
		t.Fatalf("65535-byte input: %v, %v", effs, err)
	}
}

// Secrets never appear in what the package prints: effects, events, configs, results and errors.
func TestAuthenRedaction(t *testing.T) {
	const pw = "hunter2-very-secret"
	var printed []string
	cfg := fsm.AuthenConfig{SessionID: 3, Type: tacplus.AuthenTypePAP, User: "alice", Password: []byte(pw)}
	printed = append(printed, cfg.String(), cfg.GoString())
	m, err := fsm.NewAuthen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	effs, _ := m.Step(fsm.Start())
	printed = append(printed, effs[0].String(), effs[0].GoString())
	h := effs[0].Header
	h.SeqNo = 2
	effs, _ = m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusFail, Data: pw}))
	printed = append(printed, effs[0].String(), effs[0].Err.Error(), m.Result().String())

	a, _ := fsm.NewAuthen(fsm.AuthenConfig{SessionID: 4})
	s, _ := a.Step(fsm.Start())
	h = s[0].Header
	h.SeqNo = 2
	a.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetPass}))
	in := fsm.Input([]byte(pw))
	printed = append(printed, in.String(), in.GoString())
	effs, _ = a.Step(in)
	printed = append(printed, effs[0].String())
	for _, p := range printed {
		if strings.Contains(p, pw) {
			t.Errorf("printed the password: %s", p)
		}
	}
	if !m.SecretSent() || !a.SecretSent() {
		t.Errorf("SecretSent = %v, %v; want true after a PAP START and a GETPASS answer", m.SecretSent(), a.SecretSent())
	}
}

// Wait follows the turn, and a machine is reusable after Reset.
func TestAuthenWaitAndReset(t *testing.T) {
	m, _ := fsm.NewAuthen(fsm.AuthenConfig{SessionID: 5})
	check := func(want fsm.Wait) {
		t.Helper()
		if got := m.Wait(); got != want {
			t.Errorf("Wait() = %s in %s, want %s", got, m.State(), want)
		}
	}
	check(fsm.WaitNone)
	effs, _ := m.Step(fsm.Start())
	check(fsm.WaitServer)
	h := effs[0].Header
	h.SeqNo = 2
	m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetUser}))
	check(fsm.WaitUser)
	m.Step(fsm.Input([]byte("bob")))
	check(fsm.WaitServer)
	h.SeqNo = 4
	effs, _ = m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass}))
	check(fsm.WaitNone)
	res := *effs[0].Authen // copied: Reset reuses the result
	if res.User != "bob" || res.Status != tacplus.AuthenStatusPass || !m.Replied() {
		t.Errorf("result %s replied=%v, want user bob and PASS", res, m.Replied())
	}
	if err := m.Reset(fsm.AuthenConfig{SessionID: 6, Type: tacplus.AuthenTypePAP, User: "carol", Password: []byte("pw")}); err != nil {
		t.Fatal(err)
	}
	if m.State() != fsm.AuthenIdle || m.SessionID() != 6 || m.Replied() || m.SecretSent() {
		t.Fatalf("after Reset: state %s session %d replied %v", m.State(), m.SessionID(), m.Replied())
	}
	if r := m.Result(); r.User != "carol" || r.Status != 0 || r.Err != nil {
		t.Errorf("result after Reset: %s", r)
	}
	effs, _ = m.Step(fsm.Start())
	if effs[0].Header.SessionID != 6 || effs[0].Header.SeqNo != 1 || effs[0].Header.Version != 0xc1 {
		t.Errorf("START after Reset: %s", effs[0])
	}
}

// Every enum names unknown values with their number instead of panicking or printing nothing.
func TestEnumStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{fsm.AuthenState(0).String(), "AuthenState(0)"},
		{fsm.AuthenState(99).String(), "AuthenState(99)"},
		{fsm.AuthorState(0).String(), "AuthorState(0)"},
		{fsm.AcctState(7).String(), "AcctState(7)"},
		{fsm.AcctAwaitReply.String(), "AwaitReply"},
		{fsm.EventKind(0).String(), "event(0)"},
		{fsm.EffectKind(9).String(), "effect(9)"},
		{fsm.Wait(5).String(), "wait(5)"},
		{fsm.EventConnectionLost.String(), "connection_lost"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
	// A zero machine (not made by a constructor) refuses every event instead of sending garbage.
	var m fsm.Authen
	if effs, err := m.Step(fsm.Start()); effs != nil || !errors.Is(err, fsm.ErrUnexpectedEvent) {
		t.Errorf("zero machine: %v, %v", effs, err)
	}
}

// A server that prompts forever (a GETDATA loop) gets MaxPrompts answers, then an ABORT and a typed error
// (issue 12 point 6); the default bound is 16.
func TestAuthenMaxPrompts(t *testing.T) {
	for _, max := range []int{0, 3} {
		m, err := fsm.NewAuthen(fsm.AuthenConfig{SessionID: 9, MaxPrompts: max})
		if err != nil {
			t.Fatal(err)
		}
		want := max
		if want == 0 {
			want = fsm.DefaultMaxPrompts
		}
		effs, err := m.Step(fsm.Start())
		prompts := 0
		for steps := 0; steps < 100 && !m.Done(); steps++ {
			if err != nil {
				t.Fatal(err)
			}
			last := effs[len(effs)-1]
			switch last.Kind {
			case fsm.EffectSend:
				h := tacplus.Header{Version: last.Header.Version, Type: tacplus.TypeAuthen, SeqNo: last.Header.SeqNo + 1, SessionID: 9}
				effs, err = m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetData, ServerMsg: "again: "}))
			case fsm.EffectPrompt:
				prompts++
				effs, err = m.Step(fsm.Input([]byte("x")))
			}
		}
		if !m.Done() || len(effs) != 2 {
			t.Fatalf("max %d: not done after %d prompts (effects %v)", max, prompts, effs)
		}
		if c, ok := effs[0].Body.(*tacplus.AuthenContinue); effs[0].Kind != fsm.EffectSend || !ok || c.Flags&tacplus.FlagAbort == 0 {
			t.Errorf("max %d: first effect %v, want a CONTINUE with ABORT", max, effs[0])
		}
		if e := effs[1].Err; !errors.Is(e, fsm.ErrTooManyPrompts) || !errors.Is(e, tacplus.ErrProtocol) {
			t.Errorf("max %d: completed with %v, want ErrTooManyPrompts", max, e)
		}
		if prompts != want {
			t.Errorf("max %d: %d prompts reached the user, want %d", max, prompts, want)
		}
	}
}

// The START named alice; the server asks GETUSER (hoping the user types another name): the machine
// answers alice itself, the caller is never asked, and the result reports alice (issue 13 point 2).
func TestAuthenNamedUserAnswersGetUser(t *testing.T) {
	m, err := fsm.NewAuthen(fsm.AuthenConfig{SessionID: 11, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	effs, _ := m.Step(fsm.Start())
	h := tacplus.Header{Version: effs[0].Header.Version, Type: tacplus.TypeAuthen, SeqNo: 2, SessionID: 11}
	effs, err = m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetUser, ServerMsg: "Username: "}))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := effs[0].Body.(*tacplus.AuthenContinue)
	if len(effs) != 1 || !ok || c.UserMsg != "alice" || c.Flags != 0 {
		t.Fatalf("effects %v, want one CONTINUE answering alice", effs)
	}
	h.SeqNo = 4
	if _, err = m.Step(fsm.Packet(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass})); err != nil {
		t.Fatal(err)
	}
	if r := m.Result(); r.Err != nil || r.User != "alice" {
		t.Fatalf("result %v, want PASS for alice", r)
	}
}
