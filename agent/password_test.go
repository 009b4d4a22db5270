package agent_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestCallerBuffersStayTheCallers (issue 13 point 8): the password and the conversation's answers are
// []byte the caller owns. The agent copies them and never writes them (it wipes only its own copies), so
// the caller's buffers are intact after Authenticate, and the caller may wipe them then.
func TestCallerBuffersStayTheCallers(t *testing.T) {
	srv := startServer(t, func(c *tacplustest.Config) {
		c.Users["carol"] = tacplustest.User{Password: "carol-pw", Prompts: []tacplustest.Prompt{{Message: "OTP: ", Answer: "123456", NoEcho: true}}}
	})
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}})

	pw := []byte("alice-pw")
	if _, err := h.Authenticate(ctxT(t), agent.AuthenRequest{User: "alice", Type: tacplus.AuthenTypePAP, Password: pw}, nil); err != nil {
		t.Fatal(err)
	}
	if string(pw) != "alice-pw" {
		t.Fatalf("the caller's password buffer was changed to %q", pw)
	}
	clear(pw) // the caller's to wipe, after the call

	var answers [][]byte
	_, err := h.Authenticate(ctxT(t), agent.AuthenRequest{User: "carol"}, func(_ context.Context, p agent.Prompt) ([]byte, error) {
		a := []byte("carol-pw")
		if p.Message == "OTP: " {
			a = []byte("123456")
		}
		answers = append(answers, a)
		return a, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(answers) != 2 || !bytes.Equal(answers[0], []byte("carol-pw")) || !bytes.Equal(answers[1], []byte("123456")) {
		t.Fatalf("the conversation's answer buffers were changed: %q", answers)
	}
}
