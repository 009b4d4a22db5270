package tacplustest

import (
	"crypto/subtle"

	"github.com/tacagent/tacagent/tacplus"
)

// Prompts the server sends (server_msg of GETUSER, GETPASS and GETDATA, section 5.4.2).
const (
	promptUser        = "Username: "
	promptPass        = "Password: "
	promptEnable      = "Enable password: "
	promptOldPass     = "Old password: "
	promptNewPass     = "New password: "
	promptMore        = "More: " // Faults.PromptForever
	msgSendAuth       = "outbound authentication (SENDAUTH) is not supported"
	msgUnsupported    = "authentication type not supported"
	msgMalformedCHAP  = "malformed CHAP or MS-CHAP data"
	msgLMResponse     = "MS-CHAP LM responses are not accepted"
	msgUnexpectedCont = "CONTINUE in no waiting state"
)

// authState is where an authentication session waits.
type authState uint8

const (
	stStart   authState = iota // no reply sent yet
	stUser                     // GETUSER sent
	stPass                     // GETPASS sent (login or enable password)
	stData                     // GETDATA sent for the user's Prompts[prompt]
	stOldPass                  // CHPASS: GETPASS sent for the old password
	stNewPass                  // CHPASS: GETDATA sent for the new password
)

// authenStart handles the START of an authentication session (section 5.1, flows of section 5.4.2).
func (c *conn) authenStart(s *session, h tacplus.Header, b *tacplus.AuthenStart) {
	s.action, s.service = b.Action, b.Service
	c.setUser(s, b.User)
	if c.s.promptForever(s.user) {
		c.prompt(s, h, tacplus.AuthenStatusGetData, promptMore, false)
		return
	}
	if c.s.restart(s.user, b.Type) {
		// Section 5.4.2: RESTART asks the client to start over, typically with another authen_type.
		c.answer(s, h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusRestart}, true, c.s.plan(s.user))
		return
	}
	if b.Action == tacplus.ActionSendAuth {
		c.fail(s, h, msgSendAuth)
		return
	}
	switch b.Type {
	case tacplus.AuthenTypeASCII: // sections 5.4.2.1 (login), 5.4.2.6 (enable), 5.4.2.7 (chpass)
		if s.user == "" {
			s.state = stUser
			c.prompt(s, h, tacplus.AuthenStatusGetUser, promptUser, false)
			return
		}
		c.askSecret(s, h)
	case tacplus.AuthenTypePAP: // section 5.4.2.2: the password is in data
		c.verdict(s, h, c.checkSecret(s, b.Data), "")
	case tacplus.AuthenTypeCHAP, tacplus.AuthenTypeMSCHAP, tacplus.AuthenTypeMSCHAPv2: // 5.4.2.3 - 5.4.2.5
		c.challengeResponse(s, h, b)
	default:
		c.fail(s, h, msgUnsupported)
	}
}

// challengeResponse verifies CHAP, MS-CHAPv1 and MS-CHAPv2 against the user's password.
func (c *conn) challengeResponse(s *session, h tacplus.Header, b *tacplus.AuthenStart) {
	secret, known := c.secret(s)
	var v chapVerdict
	switch b.Type {
	case tacplus.AuthenTypeCHAP:
		v = verifyCHAP(b.Data, secret)
	case tacplus.AuthenTypeMSCHAP:
		v = verifyMSCHAPv1(b.Data, secret)
	default:
		v = verifyMSCHAPv2(b.Data, s.user, secret)
	}
	switch {
	case v.malformed:
		c.s.st.authenError.Add(1)
		c.answer(s, h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusError, ServerMsg: msgMalformedCHAP}, true, c.s.plan(s.user))
	case v.lm:
		c.fail(s, h, msgLMResponse)
	default:
		c.verdict(s, h, known && v.ok, v.data)
	}
}

// askSecret asks for the password the session's action and service need.
func (c *conn) askSecret(s *session, h tacplus.Header) {
	switch {
	case s.action == tacplus.ActionChPass:
		s.state = stOldPass
		c.prompt(s, h, tacplus.AuthenStatusGetPass, promptOldPass, true)
	case s.service == tacplus.ServiceEnable:
		s.state = stPass
		c.prompt(s, h, tacplus.AuthenStatusGetPass, promptEnable, true)
	default:
		s.state = stPass
		c.prompt(s, h, tacplus.AuthenStatusGetPass, promptPass, true)
	}
}

// authenContinue handles the client's answer to GETUSER, GETPASS or GETDATA (section 5.3), or its abort.
func (c *conn) authenContinue(s *session, h tacplus.Header, b *tacplus.AuthenContinue) {
	if b.Flags&tacplus.FlagAbort != 0 {
		// Section 5.4.4: the session is over and gets no reply.
		c.s.st.aborts.Add(1)
		c.endQuietly(s)
		return
	}
	if c.s.promptForever(s.user) {
		c.prompt(s, h, tacplus.AuthenStatusGetData, promptMore, false)
		return
	}
	switch s.state {
	case stUser:
		if b.UserMsg == "" {
			c.fail(s, h, "no username")
			return
		}
		c.setUser(s, b.UserMsg)
		c.askSecret(s, h)
	case stPass:
		if !c.checkSecret(s, b.UserMsg) {
			c.fail(s, h, "")
			return
		}
		if u := c.s.user(s.user); u != nil && s.service != tacplus.ServiceEnable && len(u.Prompts) > 0 {
			s.state, s.prompt = stData, 0
			c.prompt(s, h, tacplus.AuthenStatusGetData, u.Prompts[0].Message, u.Prompts[0].NoEcho)
			return
		}
		c.verdict(s, h, true, "")
	case stData:
		u := c.s.user(s.user)
		if u == nil || s.prompt >= len(u.Prompts) || !equal(b.UserMsg, u.Prompts[s.prompt].Answer) {
			c.fail(s, h, "")
			return
		}
		if s.prompt++; s.prompt < len(u.Prompts) {
			c.prompt(s, h, tacplus.AuthenStatusGetData, u.Prompts[s.prompt].Message, u.Prompts[s.prompt].NoEcho)
			return
		}
		c.verdict(s, h, true, "")
	case stOldPass:
		if !c.checkSecret(s, b.UserMsg) {
			c.fail(s, h, "")
			return
		}
		s.state = stNewPass
		c.prompt(s, h, tacplus.AuthenStatusGetData, promptNewPass, true)
	case stNewPass:
		if b.UserMsg == "" {
			c.fail(s, h, "empty password")
			return
		}
		c.s.setPassword(s.user, b.UserMsg)
		c.verdict(s, h, true, "")
	default:
		c.protocolError(h, s, msgUnexpectedCont)
	}
}

// setUser records the session's user and takes the user's reply delay.
func (c *conn) setUser(s *session, name string) {
	s.user = name
	if u := c.s.user(name); u != nil {
		s.delay = u.Delay
	}
}

// secret returns the password the session is checked against: the enable password for the ENABLE
// service (section 5.4.2.6), the login password otherwise. known is false when there is none.
func (c *conn) secret(s *session) (secret string, known bool) {
	u := c.s.user(s.user)
	if u == nil {
		return "", false
	}
	if s.service == tacplus.ServiceEnable {
		return u.EnablePassword, u.EnablePassword != ""
	}
	return u.Password, u.Password != ""
}

func (c *conn) checkSecret(s *session, given string) bool {
	secret, known := c.secret(s)
	return known && equal(given, secret)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// prompt sends a GETUSER, GETPASS or GETDATA reply; the session continues.
func (c *conn) prompt(s *session, h tacplus.Header, st tacplus.AuthenStatus, msg string, noEcho bool) {
	r := &tacplus.AuthenReply{Status: st, ServerMsg: msg}
	if noEcho {
		r.Flags = tacplus.FlagNoEcho
	}
	c.answer(s, h, r, false, c.s.plan(s.user))
}

// verdict ends the session with PASS or FAIL.
func (c *conn) verdict(s *session, h tacplus.Header, ok bool, data string) {
	if !ok {
		c.fail(s, h, "")
		return
	}
	c.s.st.authenPass.Add(1)
	c.answer(s, h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass, Data: data}, true, c.s.plan(s.user))
}

func (c *conn) fail(s *session, h tacplus.Header, msg string) {
	c.s.st.authenFail.Add(1)
	c.answer(s, h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusFail, ServerMsg: msg}, true, c.s.plan(s.user))
}
