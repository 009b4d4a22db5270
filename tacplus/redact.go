package tacplus

import "fmt"

// Bodies that can carry a password or a CHAP response print a redacted form, so that logging a packet
// with %v or %+v never leaks a secret. Only lengths of the secret fields are shown.

func redacted(s string) string { return fmt.Sprintf("<%d bytes redacted>", len(s)) }

// String hides Data, which holds the PAP password or the CHAP/MS-CHAP response.
func (p AuthenStart) String() string {
	return fmt.Sprintf("START{action=%s priv=%d type=%s service=%s user=%q port=%q rem_addr=%q data=%s}",
		p.Action, p.PrivLvl, p.Type, p.Service, p.User, p.Port, p.RemAddr, redacted(p.Data))
}

// GoString hides Data as String does.
func (p AuthenStart) GoString() string { return p.String() }

// String hides UserMsg, which holds the user's answer to a prompt (often a password).
func (p AuthenContinue) String() string {
	return fmt.Sprintf("CONTINUE{flags=%s user_msg=%s data=%q}", p.Flags, redacted(p.UserMsg), p.Data)
}

// GoString hides UserMsg as String does.
func (p AuthenContinue) GoString() string { return p.String() }

// String hides Data, which during CHPASS and some flows can carry secrets.
func (p AuthenReply) String() string {
	return fmt.Sprintf("REPLY{status=%s flags=%s server_msg=%q data=%s}", p.Status, p.Flags, p.ServerMsg, redacted(p.Data))
}

// GoString hides Data as String does.
func (p AuthenReply) GoString() string { return p.String() }
