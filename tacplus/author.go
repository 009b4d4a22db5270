package tacplus

import "encoding/binary"

// AuthorRequest is the authorization REQUEST body (RFC 8907 section 6.1).
type AuthorRequest struct {
	Method  AuthenMethod
	PrivLvl uint8
	Type    AuthenType
	Service AuthenService
	User    string
	Port    string
	RemAddr string
	Args    []string // "name=value" (mandatory) or "name*value" (optional), section 6.1
}

// PacketType implements Body.
func (*AuthorRequest) PacketType() PacketType { return TypeAuthor }

// validateRequest checks the fields shared by authorization and accounting requests (sections 6.1, 7.1).
func validateRequest(m AuthenMethod, priv uint8, t AuthenType, svc AuthenService, user, port, rem string, args []string) error {
	if !m.Valid() {
		return errf(ReasonEnum, "authen_method", "%s", m)
	}
	if err := checkPriv(priv); err != nil {
		return err
	}
	if t > AuthenTypeMSCHAPv2 {
		return errf(ReasonEnum, "authen_type", "%s", t)
	}
	if !svc.Valid() {
		return errf(ReasonEnum, "authen_service", "%s", svc)
	}
	if err := checkUser(user); err != nil {
		return err
	}
	if err := checkText("port", port, false); err != nil {
		return err
	}
	if err := checkText("rem_addr", rem, false); err != nil {
		return err
	}
	return checkArgs(args)
}

func checkRequestLens(user, port, rem string, args []string) error {
	for _, f := range [...]struct{ n, v string }{{"user", user}, {"port", port}, {"rem_addr", rem}} {
		if err := check8(f.n, f.v); err != nil {
			return err
		}
	}
	return checkArgs(args)
}

// AppendBody implements Body.
func (p *AuthorRequest) AppendBody(b []byte) ([]byte, error) {
	if err := checkRequestLens(p.User, p.Port, p.RemAddr, p.Args); err != nil {
		return b, err
	}
	if err := validateRequest(p.Method, p.PrivLvl, p.Type, p.Service, p.User, p.Port, p.RemAddr, p.Args); err != nil {
		return b, err
	}
	b = append(b, byte(p.Method), p.PrivLvl, byte(p.Type), byte(p.Service),
		byte(len(p.User)), byte(len(p.Port)), byte(len(p.RemAddr)), byte(len(p.Args)))
	b = appendArgLens(b, p.Args)
	b = append(b, p.User...)
	b = append(b, p.Port...)
	b = append(b, p.RemAddr...)
	return appendArgs(b, p.Args), nil
}

// Unmarshal implements Body.
func (p *AuthorRequest) Unmarshal(b []byte) error {
	const fixed = 8
	if len(b) < fixed {
		return shortError("author_request", fixed, len(b))
	}
	ul, pl, rl, n := int(b[4]), int(b[5]), int(b[6]), int(b[7])
	if len(b) < fixed+n {
		return lenError("author_request", fixed+n, len(b))
	}
	if want := fixed + n + ul + pl + rl + argsTotal(b, fixed, n); want != len(b) {
		return lenError("author_request", want, len(b))
	}
	s := string(b)
	off := fixed + n
	args := reuseArgs(p.Args, n)
	*p = AuthorRequest{
		Method: AuthenMethod(b[0]), PrivLvl: b[1], Type: AuthenType(b[2]), Service: AuthenService(b[3]),
		User: s[off : off+ul], Port: s[off+ul : off+ul+pl], RemAddr: s[off+ul+pl : off+ul+pl+rl], Args: args,
	}
	splitArgs(args, s, off+ul+pl+rl, b[fixed:fixed+n])
	return validateRequest(p.Method, p.PrivLvl, p.Type, p.Service, p.User, p.Port, p.RemAddr, p.Args)
}

// AuthorResponse is the authorization RESPONSE body (section 6.2). With PASS_ADD the Args are added to
// those requested; with PASS_REPL they replace them.
type AuthorResponse struct {
	Status    AuthorStatus
	Args      []string
	ServerMsg string
	Data      string
}

// PacketType implements Body.
func (*AuthorResponse) PacketType() PacketType { return TypeAuthor }

func (p *AuthorResponse) validate() error {
	if !p.Status.Valid() {
		return errf(ReasonEnum, "status", "%s", p.Status)
	}
	if err := checkText("server_msg", p.ServerMsg, true); err != nil {
		return err
	}
	if err := checkText("data", p.Data, true); err != nil {
		return err
	}
	return checkArgs(p.Args)
}

// AppendBody implements Body.
func (p *AuthorResponse) AppendBody(b []byte) ([]byte, error) {
	if err := check16("server_msg", p.ServerMsg); err != nil {
		return b, err
	}
	if err := check16("data", p.Data); err != nil {
		return b, err
	}
	if err := p.validate(); err != nil {
		return b, err
	}
	b = append(b, byte(p.Status), byte(len(p.Args)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.ServerMsg)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Data)))
	b = appendArgLens(b, p.Args)
	b = append(b, p.ServerMsg...)
	b = append(b, p.Data...)
	return appendArgs(b, p.Args), nil
}

// Unmarshal implements Body.
func (p *AuthorResponse) Unmarshal(b []byte) error {
	const fixed = 6
	if len(b) < fixed {
		return shortError("author_response", fixed, len(b))
	}
	n, ml, dl := int(b[1]), u16(b, 2), u16(b, 4)
	if len(b) < fixed+n {
		return lenError("author_response", fixed+n, len(b))
	}
	if want := fixed + n + ml + dl + argsTotal(b, fixed, n); want != len(b) {
		return lenError("author_response", want, len(b))
	}
	s := string(b)
	off := fixed + n
	args := reuseArgs(p.Args, n)
	*p = AuthorResponse{Status: AuthorStatus(b[0]), ServerMsg: s[off : off+ml], Data: s[off+ml : off+ml+dl], Args: args}
	splitArgs(args, s, off+ml+dl, b[fixed:fixed+n])
	return p.validate()
}
