package tacplus_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// verbs are the ways a body or codec can end up in a log line.
var verbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"}

// leaks reports whether out shows the secret in clear, quoted or hex form.
func leaks(out string, secret []byte) bool {
	return strings.Contains(out, string(secret)) ||
		strings.Contains(out, fmt.Sprintf("%q", secret)[1:len(secret)]) ||
		strings.Contains(strings.ToLower(out), hex.EncodeToString(secret)) ||
		strings.Contains(out, fmt.Sprint([]byte(secret))[1:10]) // decimal bytes, as %d prints a []byte
}

// formatted renders v every way a log line might: String, GoString, each verb, and nested in a struct and a
// slice.
func formatted(v any) []string {
	var out []string
	if s, ok := v.(fmt.Stringer); ok {
		out = append(out, s.String())
	}
	if s, ok := v.(fmt.GoStringer); ok {
		out = append(out, s.GoString())
	}
	for _, verb := range verbs {
		out = append(out,
			fmt.Sprintf(verb, v),
			fmt.Sprintf(verb, struct{ Packet any }{v}),
			fmt.Sprintf(verb, []any{v}))
	}
	return out
}

// TestRedaction: the bodies that carry a password or a CHAP response (START data, CONTINUE user_msg, REPLY
// data) never print it, whatever the verb, as a value or a pointer. docs/security.md: secrets never appear in logs.
func TestRedaction(t *testing.T) {
	secret := []byte(testPass)
	start := &tacplus.AuthenStart{Action: tacplus.ActionLogin, Type: tacplus.AuthenTypePAP, User: "alice", Data: testPass}
	cont := &tacplus.AuthenContinue{UserMsg: testPass}
	reply := &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetData, Data: testPass}
	for _, v := range []any{start, *start, cont, *cont, reply, *reply} {
		for _, out := range formatted(v) {
			if leaks(out, secret) {
				t.Errorf("%T leaks the secret: %s", v, out)
			}
		}
	}
	// What is not secret stays visible, so the redaction does not hide everything.
	if s := fmt.Sprint(start); !strings.Contains(s, "alice") || !strings.Contains(s, "9 bytes redacted") {
		t.Errorf("START prints %q", s)
	}
}

// TestCodecRedaction: a codec printed any way never shows its shared key (section 4.5: "The secret keys MUST
// remain secret").
func TestCodecRedaction(t *testing.T) {
	c := keyedCodec(t, tacplus.RoleClient)
	for _, v := range []any{c, *c} {
		for _, out := range formatted(v) {
			if leaks(out, testKey) {
				t.Errorf("%T leaks the key: %s", v, out)
			}
		}
	}
	if s := c.String(); !strings.Contains(s, "client") || !strings.Contains(s, "obfuscated") {
		t.Errorf("Codec prints %q", s)
	}
}
