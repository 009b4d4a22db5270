package tacplus

import "encoding/binary"

// AcctRequest is the accounting REQUEST body (RFC 8907 section 7.1). Flags says whether the record is a
// START, a STOP or a WATCHDOG (section 7.2); the task_id argument ties the records of one task together
// (section 8.3).
type AcctRequest struct {
	Flags   AcctFlag
	Method  AuthenMethod
	PrivLvl uint8
	Type    AuthenType
	Service AuthenService
	User    string
	Port    string
	RemAddr string
	Args    []string
}

// PacketType implements Body.
func (*AcctRequest) PacketType() PacketType { return TypeAcct }

func (p *AcctRequest) validate() error {
	if !p.Flags.Valid() {
		return errf(ReasonEnum, "flags", "%s is not a valid combination (RFC 8907 section 7.2)", p.Flags)
	}
	return validateRequest(p.Method, p.PrivLvl, p.Type, p.Service, p.User, p.Port, p.RemAddr, p.Args)
}

// AppendBody implements Body.
func (p *AcctRequest) AppendBody(b []byte) ([]byte, error) {
	if err := checkRequestLens(p.User, p.Port, p.RemAddr, p.Args); err != nil {
		return b, err
	}
	if err := p.validate(); err != nil {
		return b, err
	}
	if p.Flags&AcctFlagMore != 0 {
		return b, errf(ReasonEnum, "flags", "MORE is deprecated and never sent (RFC 8907 section 7.2)")
	}
	b = append(b, byte(p.Flags), byte(p.Method), p.PrivLvl, byte(p.Type), byte(p.Service),
		byte(len(p.User)), byte(len(p.Port)), byte(len(p.RemAddr)), byte(len(p.Args)))
	b = appendArgLens(b, p.Args)
	b = append(b, p.User...)
	b = append(b, p.Port...)
	b = append(b, p.RemAddr...)
	return appendArgs(b, p.Args), nil
}

// Unmarshal implements Body.
func (p *AcctRequest) Unmarshal(b []byte) error {
	const fixed = 9
	if len(b) < fixed {
		return shortError("acct_request", fixed, len(b))
	}
	ul, pl, rl, n := int(b[5]), int(b[6]), int(b[7]), int(b[8])
	if len(b) < fixed+n {
		return lenError("acct_request", fixed+n, len(b))
	}
	if want := fixed + n + ul + pl + rl + argsTotal(b, fixed, n); want != len(b) {
		return lenError("acct_request", want, len(b))
	}
	s := string(b)
	off := fixed + n
	args := reuseArgs(p.Args, n)
	*p = AcctRequest{
		Flags: AcctFlag(b[0]), Method: AuthenMethod(b[1]), PrivLvl: b[2], Type: AuthenType(b[3]), Service: AuthenService(b[4]),
		User: s[off : off+ul], Port: s[off+ul : off+ul+pl], RemAddr: s[off+ul+pl : off+ul+pl+rl], Args: args,
	}
	splitArgs(args, s, off+ul+pl+rl, b[fixed:fixed+n])
	return p.validate()
}

// AcctReply is the accounting REPLY body (section 7.2).
type AcctReply struct {
	ServerMsg string
	Data      string
	Status    AcctStatus
}

// PacketType implements Body.
func (*AcctReply) PacketType() PacketType { return TypeAcct }

func (p *AcctReply) validate() error {
	if !p.Status.Valid() {
		return errf(ReasonEnum, "status", "%s", p.Status)
	}
	if err := checkText("server_msg", p.ServerMsg, true); err != nil {
		return err
	}
	return checkText("data", p.Data, true)
}

// AppendBody implements Body.
func (p *AcctReply) AppendBody(b []byte) ([]byte, error) {
	if err := check16("server_msg", p.ServerMsg); err != nil {
		return b, err
	}
	if err := check16("data", p.Data); err != nil {
		return b, err
	}
	if err := p.validate(); err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.ServerMsg)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Data)))
	b = append(b, byte(p.Status))
	b = append(b, p.ServerMsg...)
	return append(b, p.Data...), nil
}

// Unmarshal implements Body.
func (p *AcctReply) Unmarshal(b []byte) error {
	const fixed = 5
	if len(b) < fixed {
		return shortError("acct_reply", fixed, len(b))
	}
	ml, dl := u16(b, 0), u16(b, 2)
	if n := fixed + ml + dl; n != len(b) {
		return lenError("acct_reply", n, len(b))
	}
	s := string(b[fixed:])
	*p = AcctReply{ServerMsg: s[:ml], Data: s[ml:], Status: AcctStatus(b[4])}
	return p.validate()
}
