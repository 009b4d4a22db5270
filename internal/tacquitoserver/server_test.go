package tacquitoserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestAgentInterop drives tacquito's real server through the agent: PAP, ASCII with prompts, session and
// command authorization, and accounting records that reach the server's sink.
func TestAgentInterop(t *testing.T) {
	key := []byte("interop-key-0123456789")
	srv, err := Start(Config{Key: key, Users: []User{{Name: "alice", Password: "alice-pw", PrivLvl: 15, Permit: []string{"show"}, Deny: []string{"reload"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a, err := agent.New(agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := a.Authenticate(ctx, agent.AuthenRequest{User: "alice", Type: tacplus.AuthenTypePAP, Password: []byte("alice-pw")}, nil); err != nil {
		t.Fatalf("PAP with the right password: %v", err)
	}
	_, err = a.Authenticate(ctx, agent.AuthenRequest{User: "alice", Type: tacplus.AuthenTypePAP, Password: []byte("wrong")}, nil)
	if !errors.Is(err, tacplus.ErrAuthenticationFailed) {
		t.Fatalf("PAP with a wrong password: got %v, want ErrAuthenticationFailed", err)
	}

	var prompts []agent.Prompt
	_, err = a.Authenticate(ctx, agent.AuthenRequest{}, func(_ context.Context, p agent.Prompt) ([]byte, error) {
		prompts = append(prompts, p)
		if p.Status == tacplus.AuthenStatusGetUser {
			return []byte("alice"), nil
		}
		return []byte("alice-pw"), nil
	})
	if err != nil {
		t.Fatalf("ASCII login: %v", err)
	}
	if len(prompts) != 2 || prompts[0].NoEcho || !prompts[1].NoEcho {
		t.Fatalf("ASCII prompts = %+v, want GETUSER with echo then GETPASS without", prompts)
	}

	shell := agent.AuthorRequest{User: "alice", Method: tacplus.MethodTACACSPlus, Service: tacplus.ServiceLogin, PrivLvl: 1}
	shell.Args = []string{"service=shell", "cmd="}
	r, err := a.Authorize(ctx, shell)
	if err != nil {
		t.Fatalf("session authorization: %v", err)
	}
	if v, ok := r.Effective.Get("priv-lvl"); !ok || v.Value != "15" {
		t.Fatalf("session authorization effective pairs = %v, want priv-lvl=15", r.Effective)
	}
	shell.Args = []string{"service=shell", "cmd=show", "cmd-arg=version"}
	if _, err := a.Authorize(ctx, shell); err != nil {
		t.Fatalf("permitted command: %v", err)
	}
	shell.Args = []string{"service=shell", "cmd=reload"}
	if _, err := a.Authorize(ctx, shell); !errors.Is(err, tacplus.ErrDenied) {
		t.Fatalf("denied command: got %v, want ErrDenied", err)
	}

	for _, f := range []tacplus.AcctFlag{tacplus.AcctFlagStart, tacplus.AcctFlagStop} {
		_, err := a.Account(ctx, agent.AcctRequest{Flags: f, User: "alice", Method: tacplus.MethodTACACSPlus,
			Service: tacplus.ServiceLogin, Port: "tty1", Args: []string{"task_id=42", "service=shell"}})
		if err != nil {
			t.Fatalf("accounting %s: %v", f, err)
		}
	}
	recs := srv.Accounting()
	if len(recs) != 2 || recs[0].Flags != uint8(tacplus.AcctFlagStart) || recs[1].Flags != uint8(tacplus.AcctFlagStop) {
		t.Fatalf("server recorded %+v, want a START then a STOP", recs)
	}
}
