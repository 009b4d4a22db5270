package tacplus

import (
	"unicode"
	"unicode/utf8"
)

// Text rules of RFC 8907 section 3.7:
//   - usernames follow the UsernameCasePreserved profile of RFC 8265 (checkUser below enforces the parts
//     that protect this client: valid UTF-8, no control characters and no spaces);
//   - data fields, and the user_msg of a CONTINUE (it carries passwords), are arbitrary bytes;
//   - every other text field is printable US-ASCII: no control characters (RFC 20 section 5.2).
//
// When decoding what a server sent, server_msg and the text data fields may also hold TAB, CR and LF:
// servers put multi-line banners there. Every other control character is refused, since a server_msg goes
// to a user's terminal and escape sequences there are an attack.

// printable reports whether s is printable US-ASCII; lenient admits TAB, CR and LF too.
func printable(s string, lenient bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			continue
		}
		if lenient && (c == '\t' || c == '\r' || c == '\n') {
			continue
		}
		return false
	}
	return true
}

func checkText(field, s string, lenient bool) error {
	if !printable(s, lenient) {
		return errf(ReasonText, field, "not printable US-ASCII (RFC 8907 section 3.7)")
	}
	return nil
}

// checkUser applies the username rule of section 3.7. An empty user is allowed: ASCII login asks for it
// with GETUSER (section 5.4.2.1).
func checkUser(s string) error {
	if !utf8.ValidString(s) {
		return errf(ReasonText, "user", "not valid UTF-8 (RFC 8265)")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return errf(ReasonText, "user", "control or space character (RFC 8265 IdentifierClass)")
		}
	}
	return nil
}
