package policy

import (
	"context"

	"github.com/tacagent/tacagent/tacplus"
)

// The handler kinds.
const (
	KindTacacs = "tacacs"
	KindLocal  = "local"
	KindDeny   = "deny"
)

// Authenticator is what the policy needs from the actor core's Go API: one authentication against one
// server group, with the group's own failover (server order, dead-time) done inside it. It returns an
// error of the project's taxonomy (nil for PASS), the server that gave the final answer in Reply.Server
// (or in the *tacplus.Error), and the servers it passed over in Reply.Attempts. It asks the user through
// conv for ASCII login prompts (GETUSER, GETPASS, GETDATA, honouring NOECHO).
type Authenticator interface {
	Authenticate(ctx context.Context, group string, req Request, conv Conversation) (Reply, error)
}

// Tacacs is the handler for one TACACS+ server group.
type Tacacs struct {
	group string
	auth  Authenticator
}

// NewTacacs returns the handler for the server group named group, served by auth.
func NewTacacs(group string, auth Authenticator) *Tacacs { return &Tacacs{group: group, auth: auth} }

// Group returns the server group's name.
func (t *Tacacs) Group() string { return t.group }

// Kind returns "tacacs".
func (*Tacacs) Kind() string { return KindTacacs }

// Authenticate asks the server group.
func (t *Tacacs) Authenticate(ctx context.Context, req Request, conv Conversation) (Reply, error) {
	if t.auth == nil {
		return Reply{}, configErr("tacacs group %q: no authenticator", t.group)
	}
	return t.auth.Authenticate(ctx, t.group, req, conv)
}

// Deny is the handler that always fails, to end a stack explicitly (pam_deny).
type Deny struct{}

// Kind returns "deny".
func (Deny) Kind() string { return KindDeny }

// Authenticate fails with tacplus.ErrAuthenticationFailed.
func (Deny) Authenticate(context.Context, Request, Conversation) (Reply, error) {
	return Reply{}, &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Msg: "denied by the stack"}
}
