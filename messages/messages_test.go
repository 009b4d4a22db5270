package messages

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNoSecretsInStrings: the types that carry a password or a user's answer never print it, whatever the
// verb.
func TestNoSecretsInStrings(t *testing.T) {
	const secret = "hunter2-secret"
	for _, v := range []any{
		AuthenRequest{User: "alice", Password: []byte(secret)},
		&AuthenRequest{User: "alice", Password: []byte(secret)},
		UserInput{Text: []byte(secret)},
		&UserInput{Text: []byte(secret)},
	} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, secret) {
				t.Errorf("%s of %T shows the secret: %s", verb, v, out)
			}
		}
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		r    Request
		want string
	}{
		{Request{Authen: &AuthenRequest{}}, "authen"},
		{Request{Author: &AuthorRequest{}}, "author"},
		{Request{Acct: &AcctRequest{}}, "acct"},
	} {
		if got := tc.r.Kind().String(); got != tc.want {
			t.Errorf("Kind = %s, want %s", got, tc.want)
		}
	}
	if got := Kind(9).String(); got != "kind(9)" {
		t.Errorf("unknown kind prints %q", got)
	}
}
