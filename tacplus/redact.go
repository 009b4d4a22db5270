package tacplus

import (
	"fmt"
	"io"
	"strconv"
)

// Bodies that can carry a password or a CHAP response print a redacted form, so that logging a packet
// with any verb never leaks a secret. Only lengths of the secret fields are shown. String alone is not
// enough: fmt uses it for %v, %s, %q and %x only, and %d (or any other verb) would print the raw fields.
// Format routes every verb to the redacted form.

func redacted(s string) string { return fmt.Sprintf("<%d bytes redacted>", len(s)) }

// formatRedacted writes the redacted form s whatever the verb.
func formatRedacted(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}

// Format implements fmt.Formatter: every verb prints String.
func (p AuthenStart) Format(f fmt.State, verb rune) { formatRedacted(f, verb, p.String()) }

// Format implements fmt.Formatter: every verb prints String.
func (p AuthenContinue) Format(f fmt.State, verb rune) { formatRedacted(f, verb, p.String()) }

// Format implements fmt.Formatter: every verb prints String.
func (p AuthenReply) Format(f fmt.State, verb rune) { formatRedacted(f, verb, p.String()) }

// Format implements fmt.Formatter for a Codec, by value or pointer: every verb prints String, so %#v, %d
// or a Codec held by value inside another struct never shows the key (RFC 8907 section 4.5: the secret
// keys MUST remain secret).
func (c Codec) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c.String()) }

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
