package tacplus

import "encoding/binary"

// AuthenStart is the authentication START body (RFC 8907 section 5.1), sent by the client with seq_no 1.
// Data carries the PAP password, the CHAP/MS-CHAP identifier, challenge and response, or nothing for ASCII
// login (section 5.4.2).
type AuthenStart struct {
	Action  AuthenAction
	PrivLvl uint8
	Type    AuthenType
	Service AuthenService
	User    string
	Port    string
	RemAddr string
	Data    string
}

// PacketType implements Body.
func (*AuthenStart) PacketType() PacketType { return TypeAuthen }

func (p *AuthenStart) validate() error {
	if !p.Action.Valid() {
		return errf(ReasonEnum, "action", "%s", p.Action)
	}
	if err := checkPriv(p.PrivLvl); err != nil {
		return err
	}
	if _, ok := StartMinorVersion(p.Action, p.Type); !ok {
		return errf(ReasonEnum, "authen_type", "%s is not valid with action %s (RFC 8907 section 5.4.1)", p.Type, p.Action)
	}
	if !p.Service.Valid() {
		return errf(ReasonEnum, "authen_service", "%s", p.Service)
	}
	if err := checkUser(p.User); err != nil {
		return err
	}
	if err := checkText("port", p.Port, false); err != nil {
		return err
	}
	return checkText("rem_addr", p.RemAddr, false)
}

// AppendBody implements Body.
func (p *AuthenStart) AppendBody(b []byte) ([]byte, error) {
	for _, f := range [...]struct{ n, v string }{{"user", p.User}, {"port", p.Port}, {"rem_addr", p.RemAddr}, {"data", p.Data}} {
		if err := check8(f.n, f.v); err != nil {
			return b, err
		}
	}
	if err := p.validate(); err != nil {
		return b, err
	}
	b = append(b, byte(p.Action), p.PrivLvl, byte(p.Type), byte(p.Service),
		byte(len(p.User)), byte(len(p.Port)), byte(len(p.RemAddr)), byte(len(p.Data)))
	b = append(b, p.User...)
	b = append(b, p.Port...)
	b = append(b, p.RemAddr...)
	return append(b, p.Data...), nil
}

// Unmarshal implements Body.
func (p *AuthenStart) Unmarshal(b []byte) error {
	const fixed = 8
	if len(b) < fixed {
		return shortError("authen_start", fixed, len(b))
	}
	ul, pl, rl, dl := int(b[4]), int(b[5]), int(b[6]), int(b[7])
	if n := fixed + ul + pl + rl + dl; n != len(b) {
		return lenError("authen_start", n, len(b))
	}
	s := string(b[fixed:])
	*p = AuthenStart{
		Action: AuthenAction(b[0]), PrivLvl: b[1], Type: AuthenType(b[2]), Service: AuthenService(b[3]),
		User: s[:ul], Port: s[ul : ul+pl], RemAddr: s[ul+pl : ul+pl+rl], Data: s[ul+pl+rl:],
	}
	return p.validate()
}

// AuthenReply is the authentication REPLY body (section 5.2), sent by the server.
type AuthenReply struct {
	Status    AuthenStatus
	Flags     AuthenReplyFlag
	ServerMsg string
	Data      string
}

// PacketType implements Body.
func (*AuthenReply) PacketType() PacketType { return TypeAuthen }

func (p *AuthenReply) validate() error {
	if !p.Status.Valid() {
		return errf(ReasonEnum, "status", "%s", p.Status)
	}
	if p.Flags&^FlagNoEcho != 0 {
		return errf(ReasonEnum, "flags", "%s", p.Flags)
	}
	if err := checkText("server_msg", p.ServerMsg, true); err != nil {
		return err
	}
	// FOLLOW's data is a list of servers in text form (section 5.4.3); other data is arbitrary bytes.
	if p.Status == AuthenStatusFollow {
		return checkText("data", p.Data, true)
	}
	return nil
}

// AppendBody implements Body.
func (p *AuthenReply) AppendBody(b []byte) ([]byte, error) {
	if err := check16("server_msg", p.ServerMsg); err != nil {
		return b, err
	}
	if err := check16("data", p.Data); err != nil {
		return b, err
	}
	if err := p.validate(); err != nil {
		return b, err
	}
	b = append(b, byte(p.Status), byte(p.Flags))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.ServerMsg)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Data)))
	b = append(b, p.ServerMsg...)
	return append(b, p.Data...), nil
}

// Unmarshal implements Body.
func (p *AuthenReply) Unmarshal(b []byte) error {
	const fixed = 6
	if len(b) < fixed {
		return shortError("authen_reply", fixed, len(b))
	}
	ml, dl := u16(b, 2), u16(b, 4)
	if n := fixed + ml + dl; n != len(b) {
		return lenError("authen_reply", n, len(b))
	}
	s := string(b[fixed:])
	*p = AuthenReply{Status: AuthenStatus(b[0]), Flags: AuthenReplyFlag(b[1]), ServerMsg: s[:ml], Data: s[ml:]}
	return p.validate()
}

// NoEcho reports whether the client must not echo the user's answer.
func (p *AuthenReply) NoEcho() bool { return p.Flags&FlagNoEcho != 0 }

// AuthenContinue is the authentication CONTINUE body (section 5.3), sent by the client with the user's
// answer in UserMsg, or with the ABORT flag and an optional reason in Data.
type AuthenContinue struct {
	UserMsg string
	Data    string
	Flags   AuthenContinueFlag
}

// PacketType implements Body.
func (*AuthenContinue) PacketType() PacketType { return TypeAuthen }

func (p *AuthenContinue) validate() error {
	if p.Flags&^FlagAbort != 0 {
		return errf(ReasonEnum, "flags", "%s", p.Flags)
	}
	// An abort's data is a printable reason (section 5.3); user_msg carries passwords: arbitrary bytes.
	if p.Flags&FlagAbort != 0 {
		return checkText("data", p.Data, true)
	}
	return nil
}

// AppendBody implements Body.
func (p *AuthenContinue) AppendBody(b []byte) ([]byte, error) {
	if err := check16("user_msg", p.UserMsg); err != nil {
		return b, err
	}
	if err := check16("data", p.Data); err != nil {
		return b, err
	}
	if err := p.validate(); err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.UserMsg)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Data)))
	b = append(b, byte(p.Flags))
	b = append(b, p.UserMsg...)
	return append(b, p.Data...), nil
}

// Unmarshal implements Body.
func (p *AuthenContinue) Unmarshal(b []byte) error {
	const fixed = 5
	if len(b) < fixed {
		return shortError("authen_continue", fixed, len(b))
	}
	ul, dl := u16(b, 0), u16(b, 2)
	if n := fixed + ul + dl; n != len(b) {
		return lenError("authen_continue", n, len(b))
	}
	s := string(b[fixed:])
	*p = AuthenContinue{UserMsg: s[:ul], Data: s[ul:], Flags: AuthenContinueFlag(b[4])}
	return p.validate()
}
