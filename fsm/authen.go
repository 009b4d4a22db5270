package fsm

import (
	"errors"
	"fmt"

	"github.com/tacagent/tacagent/tacplus"
)

// AuthenState is the state of an authentication session (RFC 8907 section 5).
type AuthenState uint8

// The authentication states. The zero value is not a state: a machine is made by NewAuthen or Reset.
const (
	AuthenIdle         AuthenState = iota + 1 // made, START not sent
	AuthenStartSent                           // START sent (seq_no 1), waiting for the first REPLY
	AuthenAwaitUser                           // a GETUSER/GETPASS/GETDATA prompt is pending
	AuthenContinueSent                        // CONTINUE sent, waiting for the next REPLY
	AuthenDone                                // completed; the result is final
)

func (s AuthenState) String() string {
	switch s {
	case AuthenIdle:
		return "Idle"
	case AuthenStartSent:
		return "StartSent"
	case AuthenAwaitUser:
		return "AwaitUser"
	case AuthenContinueSent:
		return "ContinueSent"
	case AuthenDone:
		return "Done"
	}
	return unknownEnum("AuthenState", uint8(s))
}

// AuthenStates lists every authentication state, for tables that must cover them all.
func AuthenStates() []AuthenState {
	return []AuthenState{AuthenIdle, AuthenStartSent, AuthenAwaitUser, AuthenContinueSent, AuthenDone}
}

// AuthenConfig describes one authentication session. The machine draws no random numbers: SessionID, and
// for CHAP and MS-CHAP the identifier and challenges, come from the caller (crypto/rand there).
type AuthenConfig struct {
	// SessionID is the session_id of every packet (section 4.1). It must not be 0. After a RESTART, the
	// new session needs a new one.
	SessionID uint32
	// Action is LOGIN (default) or CHPASS (section 5.4.2.7, ASCII only). SENDAUTH is refused: RFC 8907
	// defines no flow for it.
	Action tacplus.AuthenAction
	// Type is ASCII (default), PAP, CHAP, MSCHAP or MSCHAPV2. It fixes the version of every packet of the
	// session (section 5.4.1).
	Type tacplus.AuthenType
	// Service is LOGIN (default), ENABLE for an enable request (section 5.4.2.6: LOGIN action only), or
	// another authen_service.
	Service tacplus.AuthenService
	// PrivLvl is the privilege level asked for (section 5.1); an ENABLE request names the level wanted.
	PrivLvl uint8
	// User may be empty for ASCII (the server asks with GETUSER); PAP, CHAP and MS-CHAP require it.
	User    string
	Port    string
	RemAddr string
	// Password is sent by PAP and turned into the response by CHAP and MS-CHAP. ASCII ignores it: its
	// answers come from the user through EventInput. The machine only reads it, while NewAuthen builds
	// the START: the buffer stays its owner's, who may wipe it once NewAuthen returned.
	Password []byte
	// ChallengeID is the PPP identifier of CHAP and MS-CHAP (the first data byte).
	ChallengeID byte
	// Challenge is the challenge: at least 1 byte for CHAP (8 or more recommended, section 5.4.2.3), 8 bytes
	// for MS-CHAP (section 5.4.2.4), the 16-byte authenticator challenge for MS-CHAP-V2 (section 5.4.2.5).
	Challenge []byte
	// PeerChallenge is MS-CHAP-V2's 16-byte peer challenge (RFC 2759 section 4).
	PeerChallenge []byte
	// Prepared is the START data of a CHAP, MS-CHAP or MS-CHAP-V2 login whose response someone else
	// computed: the PPP identifier, the challenge and the response (sections 5.4.2.3 to 5.4.2.5), as a
	// client of the loopback front end sent them. When it is set, Password, ChallengeID, Challenge and
	// PeerChallenge are not used; the data is checked like a server checks it (SplitCHAPData) and sent as
	// it is. Other authen_types refuse it.
	Prepared []byte
	// MaxPrompts bounds the server's GETUSER/GETPASS/GETDATA replies in one session: one more ends the
	// session with an ABORT and ErrTooManyPrompts. 0 means DefaultMaxPrompts; below 0, only the seq_no
	// limit of section 4.1 applies.
	MaxPrompts int
}

// DefaultMaxPrompts is AuthenConfig.MaxPrompts' default (issue 12 point 6).
const DefaultMaxPrompts = 16

// ErrTooManyPrompts is the cause (in a *tacplus.Error of class tacplus.ErrProtocol) of a session the
// server kept prompting past AuthenConfig.MaxPrompts.
var ErrTooManyPrompts = errors.New("fsm: the server prompted more times than allowed")

// String never shows the password.
func (c AuthenConfig) String() string {
	return fmt.Sprintf("authen{session=0x%08x action=%s type=%s service=%s priv=%d user=%q port=%q rem_addr=%q password=<%d bytes>}",
		c.SessionID, c.Action, c.Type, c.Service, c.PrivLvl, c.User, c.Port, c.RemAddr, len(c.Password))
}

// GoString never shows the password.
func (c AuthenConfig) GoString() string { return c.String() }

// AuthenResult is the outcome of an authentication session.
type AuthenResult struct {
	// Status is the final REPLY's status (PASS, FAIL, ERROR, RESTART, FOLLOW), or 0 when the session
	// ended without one (timeout, connection lost, abort, protocol error).
	Status tacplus.AuthenStatus
	// Type is the session's authen_type. With RESTART it is the type the server refused (section 5.4.3):
	// the caller may start a new session, with a new session_id, of another type.
	Type tacplus.AuthenType
	// User is the username: the START's, or the last answer to GETUSER.
	User      string
	ServerMsg string
	// Data is the final REPLY's data: for ERROR a message for an administrator's log (section 5.4.3).
	Data string
	// Err is nil only for PASS. FAIL, FOLLOW (treated as FAIL) and RESTART (FAIL for a caller that does not
	// restart, section 5.4.3) are tacplus.ErrAuthenticationFailed; ERROR is tacplus.ErrServerError.
	Err error
}

// String shows the data's length only.
func (r AuthenResult) String() string {
	return fmt.Sprintf("authen{status=%s type=%s user=%q server_msg=%q data=<%d bytes>}",
		statusName(r.Status, r.Status == 0), r.Type, r.User, r.ServerMsg, len(r.Data))
}

// Authen is the client's authentication session machine (RFC 8907 section 5): ASCII login with
// server-driven GETUSER/GETPASS/GETDATA prompts, PAP, CHAP, MS-CHAP v1 and v2, ENABLE and CHPASS.
// It is not safe for concurrent use; one goroutine (the session actor) owns it.
type Authen struct {
	core
	typ    tacplus.AuthenType
	state  AuthenState
	start  *tacplus.AuthenStart
	prompt tacplus.AuthenStatus // the prompt being answered, in AuthenAwaitUser
	result AuthenResult
	// prompts counts the server's prompts so far; maxPrompts bounds them (<0: no bound).
	prompts, maxPrompts int
}

// NewAuthen validates cfg and returns a machine in AuthenIdle. A configuration that cannot make a valid
// session is a *tacplus.Error of class tacplus.ErrConfig.
func NewAuthen(cfg AuthenConfig) (*Authen, error) {
	m := new(Authen)
	if err := m.Reset(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// Reset makes m a new machine for cfg, in AuthenIdle, as NewAuthen does. It reuses the result and the
// effect buffer: copy a result before Reset to keep it.
func (m *Authen) Reset(cfg AuthenConfig) error {
	if cfg.Action == 0 {
		cfg.Action = tacplus.ActionLogin
	}
	if cfg.Type == 0 {
		cfg.Type = tacplus.AuthenTypeASCII
	}
	if cfg.Service == 0 {
		cfg.Service = tacplus.ServiceLogin
	}
	sid := cfg.SessionID
	if sid == 0 {
		return configError(0, nil, "session_id 0: the caller must draw a random session_id (RFC 8907 section 4.1)")
	}
	if cfg.Action == tacplus.ActionSendAuth {
		return configError(sid, nil, "SENDAUTH is not supported: RFC 8907 section 5.4.2 defines no flow for it")
	}
	minor, ok := tacplus.StartMinorVersion(cfg.Action, cfg.Type)
	if !ok {
		return configError(sid, nil, "authen_type %s is not valid with action %s (RFC 8907 section 5.4.1)", cfg.Type, cfg.Action)
	}
	if cfg.Service == tacplus.ServiceEnable && cfg.Action != tacplus.ActionLogin {
		return configError(sid, nil, "the ENABLE service takes the LOGIN action only (RFC 8907 section 5.4.2.6)")
	}
	var data string
	switch cfg.Type {
	case tacplus.AuthenTypePAP:
		// Section 5.4.2.2: the START carries the username and the password.
		if cfg.User == "" || len(cfg.Password) == 0 {
			return configError(sid, nil, "PAP needs a username and a password (RFC 8907 section 5.4.2.2)")
		}
		data = string(cfg.Password)
	case tacplus.AuthenTypeCHAP, tacplus.AuthenTypeMSCHAP, tacplus.AuthenTypeMSCHAPv2:
		if cfg.User == "" {
			return configError(sid, nil, "%s needs a username (RFC 8907 sections 5.4.2.3-5.4.2.5)", cfg.Type)
		}
		if len(cfg.Prepared) > 0 {
			if _, _, _, err := SplitCHAPData(cfg.Type, string(cfg.Prepared)); err != nil {
				return configError(sid, err, "prepared %s data", cfg.Type)
			}
			data = string(cfg.Prepared)
			break
		}
		var err error
		if data, err = chapData(&cfg); err != nil {
			return configError(sid, err, "%s data", cfg.Type)
		}
	}
	if len(cfg.Prepared) > 0 && data != string(cfg.Prepared) {
		return configError(sid, nil, "prepared START data is for CHAP, MS-CHAP and MS-CHAP-V2 only, not %s", cfg.Type)
	}
	start := &tacplus.AuthenStart{
		Action: cfg.Action, PrivLvl: cfg.PrivLvl, Type: cfg.Type, Service: cfg.Service,
		User: cfg.User, Port: cfg.Port, RemAddr: cfg.RemAddr, Data: data,
	}
	// The codec's own checks, once, so that the START can never be refused by the encoder later.
	var scratch [512]byte
	enc, err := start.AppendBody(scratch[:0])
	clear(enc) // it holds the password in the clear
	if err != nil {
		return configError(sid, err, "invalid START")
	}
	m.core.reset(sid, tacplus.VersionByte(minor), tacplus.TypeAuthen)
	m.typ = cfg.Type
	m.state = AuthenIdle
	m.start = start
	m.prompt = 0
	m.prompts, m.maxPrompts = 0, cfg.MaxPrompts
	if m.maxPrompts == 0 {
		m.maxPrompts = DefaultMaxPrompts
	}
	m.result = AuthenResult{Type: cfg.Type, User: cfg.User}
	return nil
}

// State returns the current state.
func (m *Authen) State() AuthenState { return m.state }

// StateName implements Machine.
func (m *Authen) StateName() string { return m.state.String() }

// Done implements Machine.
func (m *Authen) Done() bool { return m.state == AuthenDone }

// Wait implements Machine.
func (m *Authen) Wait() Wait {
	switch m.state {
	case AuthenStartSent, AuthenContinueSent:
		return WaitServer
	case AuthenAwaitUser:
		return WaitUser
	}
	return WaitNone
}

// Result returns the result; it is final once the machine is Done.
func (m *Authen) Result() *AuthenResult { return &m.result }

// Step implements Machine. See the transition table in authen_test.go.
func (m *Authen) Step(ev Event) ([]Effect, error) {
	m.begin()
	switch m.state {
	case AuthenDone:
		return nil, m.refuse(ErrFinished, m.state.String(), ev)
	case 0:
		return nil, m.refuse(ErrUnexpectedEvent, m.state.String(), ev)
	}
	switch ev.Kind {
	case EventStart:
		if m.state != AuthenIdle {
			return nil, m.refuse(ErrUnexpectedEvent, m.state.String(), ev)
		}
		m.send(m.start)
		m.secretSent = m.typ != tacplus.AuthenTypeASCII
		m.state = AuthenStartSent
	case EventPacket:
		if m.state == AuthenIdle {
			// Nothing was sent: the packet cannot be a reply to this session.
			return nil, m.refuse(ErrUnexpectedEvent, m.state.String(), ev)
		}
		m.onPacket(&ev)
	case EventInput:
		if m.state != AuthenAwaitUser {
			return nil, m.refuse(ErrUnexpectedEvent, m.state.String(), ev)
		}
		if len(ev.Input) > 0xffff {
			return nil, m.refuse(fmt.Errorf("%w: input of %d bytes, user_msg holds 65535 (RFC 8907 section 5.3)", ErrUnexpectedEvent, len(ev.Input)), m.state.String(), ev)
		}
		// The CONTINUE holds its own copy of the answer: the caller's buffer may be wiped once Step returned.
		msg := string(ev.Input)
		if m.prompt == tacplus.AuthenStatusGetUser {
			m.result.User = msg
		} else {
			m.secretSent = true
		}
		m.send(&tacplus.AuthenContinue{UserMsg: msg})
		m.state = AuthenContinueSent
	case EventTimeout:
		what := timeoutMsg(m.state == AuthenIdle)
		if m.state == AuthenAwaitUser {
			// The user did not answer: tell the server the session is over (section 5.4.3).
			m.sendAbort("timeout")
			what = "no answer from the user"
		}
		m.finish(0, tacplus.ErrTimeout, ev.Err, what)
	case EventConnectionLost:
		m.finish(0, tacplus.ErrConnectionLost, ev.Err, "")
	case EventAbort:
		msg := ""
		switch m.state {
		case AuthenAwaitUser:
			// Section 5.4.3: the client ends the session with a CONTINUE carrying the ABORT flag.
			m.sendAbort(ev.Reason)
		case AuthenStartSent, AuthenContinueSent:
			// The server holds the turn: a CONTINUE now would break the alternation of seq_no (section
			// 4.1), so none is sent. The caller drops the session; a late reply finds no session.
			msg = "aborted while waiting for the server; no ABORT can be sent before its reply"
		}
		m.finish(0, tacplus.ErrAborted, nil, msg)
	default:
		return nil, m.refuse(ErrUnexpectedEvent, m.state.String(), ev)
	}
	return m.effects(), nil
}

func (m *Authen) sendAbort(reason string) {
	if !printable(reason) || len(reason) > 0xffff {
		reason = "" // section 5.4.3: the reason is text (section 3.7); an unprintable one is dropped
	}
	m.send(&tacplus.AuthenContinue{Flags: tacplus.FlagAbort, Data: reason})
}

// finish completes the session. status is the final REPLY's, or 0.
func (m *Authen) finish(status tacplus.AuthenStatus, class, cause error, msg string) {
	m.result.Status = status
	if class != nil {
		m.result.Err = m.sessionError(class, m.state.String(), cause, msg)
	}
	m.state = AuthenDone
	m.complete(Effect{Err: m.result.Err, Authen: &m.result})
}

func (m *Authen) protocolError(class, cause error) {
	m.finish(0, class, cause, "bad reply")
}

func (m *Authen) onPacket(ev *Event) {
	if m.state == AuthenAwaitUser && ev.Err == nil {
		// The client holds the turn (section 5.4): the server may not send now.
		m.protocolError(tacplus.ErrProtocol, badPacket(tacplus.ReasonSeq, "seq_no",
			"%d arrived while the client owes a CONTINUE", ev.Header.SeqNo))
		return
	}
	r, class, cause := acceptReply(&m.core, ev, "an authentication REPLY",
		func(r *tacplus.AuthenReply) bool { return r.Status == tacplus.AuthenStatusError })
	if class != nil {
		m.protocolError(class, cause)
		return
	}
	m.replied = true
	if r.Status != tacplus.AuthenStatusGetUser && r.Status != tacplus.AuthenStatusGetPass && r.Status != tacplus.AuthenStatusGetData {
		// A final reply: a prompt's server_msg belongs to the prompt, not to the result.
		m.result.ServerMsg, m.result.Data = r.ServerMsg, r.Data
	}
	switch r.Status {
	case tacplus.AuthenStatusPass:
		m.finish(r.Status, nil, nil, "")
	case tacplus.AuthenStatusFail:
		m.finish(r.Status, tacplus.ErrAuthenticationFailed, nil, serverSaid(r.ServerMsg, "the server answered FAIL"))
	case tacplus.AuthenStatusError:
		// Section 4.4: the caller behaves as if the server could not be reached.
		m.finish(r.Status, tacplus.ErrServerError, nil, serverSaid(r.ServerMsg, "the server answered ERROR"))
	case tacplus.AuthenStatusFollow:
		m.finish(r.Status, tacplus.ErrAuthenticationFailed, nil,
			serverSaid(r.ServerMsg, "FOLLOW is not supported and counts as FAIL (RFC 8907 section 5.4.3)"))
	case tacplus.AuthenStatusRestart:
		m.finish(r.Status, tacplus.ErrAuthenticationFailed, nil,
			"the server refused authen_type "+m.typ.String()+" and asked for a RESTART (RFC 8907 section 5.4.3)")
	case tacplus.AuthenStatusGetUser, tacplus.AuthenStatusGetPass, tacplus.AuthenStatusGetData:
		m.onPrompt(ev.Header, r)
	default:
		m.protocolError(tacplus.ErrProtocol, badPacket(tacplus.ReasonEnum, "status", "%s", r.Status))
	}
}

func (m *Authen) onPrompt(h tacplus.Header, r *tacplus.AuthenReply) {
	if m.typ != tacplus.AuthenTypeASCII {
		// Sections 5.4.2.2-5.4.2.5: PAP, CHAP and MS-CHAP are one START and one REPLY.
		m.protocolError(tacplus.ErrProtocol, badPacket(tacplus.ReasonEnum, "status",
			"%s in a %s session, which takes a single START and a single REPLY (RFC 8907 section 5.4.2)", r.Status, m.typ))
		return
	}
	if h.SeqNo+1 > lastClientSeq {
		// The answer would need seq_no 255, which must never be reached (section 4.1).
		m.protocolError(tacplus.ErrProtocol, badPacket(tacplus.ReasonSeq, "seq_no",
			"%s at seq_no %d: the answer would reach 255, the session must end (RFC 8907 section 4.1)", r.Status, h.SeqNo))
		return
	}
	m.prompts++
	if m.maxPrompts >= 0 && m.prompts > m.maxPrompts {
		// A server that prompts forever must not hold the session (issue 12 point 6). The client holds the
		// turn, so it can end the session properly (section 5.4.3).
		m.sendAbort("too many prompts")
		m.finish(0, tacplus.ErrProtocol, ErrTooManyPrompts,
			fmt.Sprintf("the server sent more than %d prompts", m.maxPrompts))
		return
	}
	if r.Status == tacplus.AuthenStatusGetUser && m.start.User != "" {
		// The START named the user: the server cannot change who logs in (issue 13 point 2). The machine
		// answers with that user itself; the caller never sees this prompt.
		m.send(&tacplus.AuthenContinue{UserMsg: m.start.User})
		m.state = AuthenContinueSent
		return
	}
	m.prompt = r.Status
	m.state = AuthenAwaitUser
	m.core.prompt(Prompt{Status: r.Status, Message: r.ServerMsg, NoEcho: r.NoEcho() || r.Status == tacplus.AuthenStatusGetPass})
}
