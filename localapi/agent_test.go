package localapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// agentBackend is the smallest Backend over a real agent.Agent: no policy stack, one server group. The
// daemon's Backend adds the stack, accounting of the caller and logging.
type agentBackend struct{ a *agent.Agent }

var (
	authenTypes = map[string]tacplus.AuthenType{TypeASCII: tacplus.AuthenTypeASCII, TypePAP: tacplus.AuthenTypePAP,
		TypeCHAP: tacplus.AuthenTypeCHAP, TypeMSCHAPv1: tacplus.AuthenTypeMSCHAP, TypeMSCHAPv2: tacplus.AuthenTypeMSCHAPv2}
	acctFlags = map[string]tacplus.AcctFlag{FlagStart: tacplus.AcctFlagStart, FlagStop: tacplus.AcctFlagStop,
		FlagWatchdog: tacplus.AcctFlagWatchdog, FlagUpdate: tacplus.AcctFlagWatchdog | tacplus.AcctFlagStart}
)

func (b agentBackend) Authenticate(ctx context.Context, _ Caller, req AuthenRequest, conv Conversation) (AuthenResult, error) {
	ar := agent.AuthenRequest{User: req.User, Password: []byte(req.Password), Type: authenTypes[req.Type],
		PrivLvl: uint8(req.PrivLvl), Port: req.Port, RemAddr: req.RemAddr, Service: tacplus.ServiceLogin, Action: tacplus.ActionLogin}
	if req.Service == ServiceEnable {
		ar.Service = tacplus.ServiceEnable
	}
	if req.Action == ActionChpass {
		ar.Action = tacplus.ActionChPass
	}
	r, err := b.a.Authenticate(ctx, ar, func(ctx context.Context, p agent.Prompt) ([]byte, error) {
		kind := PromptData
		switch p.Status {
		case tacplus.AuthenStatusGetUser:
			kind = PromptUser
		case tacplus.AuthenStatusGetPass:
			kind = PromptPassword
		}
		answer, err := conv(ctx, Prompt{Message: p.Message, Echo: !p.NoEcho, Kind: kind})
		return []byte(answer), err
	})
	var res AuthenResult
	if r != nil {
		res.User, res.Server, res.SessionID, res.ServerMsg = r.User, r.Server, r.SessionID, r.ServerMsg
	}
	return res, err
}

func (b agentBackend) Authorize(ctx context.Context, _ Caller, req AuthorRequest) (AuthorResult, error) {
	r, err := b.a.Authorize(ctx, agent.AuthorRequest{User: req.User, Method: tacplus.MethodTACACSPlus, Service: tacplus.ServiceLogin,
		PrivLvl: uint8(req.PrivLvl), Port: req.Port, RemAddr: req.RemAddr, Args: req.Pairs()})
	var res AuthorResult
	if r != nil {
		res.Args, res.Effective, res.ServerMsg, res.Server, res.SessionID = r.Returned.Strings(), r.Effective.Strings(), r.ServerMsg, r.Server, r.SessionID
	}
	return res, err
}

func (b agentBackend) Account(ctx context.Context, _ Caller, req AcctRequest) (AcctResult, error) {
	args := []string{"task_id=" + req.TaskID}
	r, err := b.a.Account(ctx, agent.AcctRequest{User: req.User, Flags: acctFlags[req.Flags], Method: tacplus.MethodTACACSPlus,
		Service: tacplus.ServiceLogin, PrivLvl: uint8(req.PrivLvl), Port: req.Port, RemAddr: req.RemAddr, Args: append(args, req.AV...)})
	var res AcctResult
	if r != nil {
		res.Server, res.SessionID, res.ServerMsg = r.Server, r.SessionID, r.ServerMsg
	}
	return res, err
}

func (b agentBackend) Status(ctx context.Context) (Status, error) {
	rep, err := b.a.Status(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Pending: rep.Pending}
	for _, s := range rep.Servers {
		st.Servers = append(st.Servers, ServerStatus{Name: s.Name, Addr: s.Addr, Groups: s.Groups, State: s.State, DeadUntil: s.DeadUntil,
			SingleConnect: s.SingleConnect, InFlight: s.InFlight, Queued: s.Queued, LastError: s.LastError})
	}
	return st, nil
}

// TestRealAgent wires a real agent.Agent, against the project's TACACS+ test server, behind the API: a PAP
// login, an ASCII login whose prompts (with their NOECHO flags) are driven by the server, an
// authorization and an accounting record all cross the socket.
func TestRealAgent(t *testing.T) {
	key := []byte("localapi-test-key")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Users: map[string]tacplustest.User{
			"alice": {Password: "pw"},
			"carol": {Password: "pw", Prompts: []tacplustest.Prompt{{Message: "OTP: ", Answer: "123", NoEcho: true},
				{Message: "Favourite colour: ", Answer: "blue"}}},
		},
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: "show .*", Permit: true, Args: []string{"priv-lvl=15"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a, err := agent.New(agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if _, err := a.Close(ctx); err != nil {
			t.Errorf("agent Close: %v", err)
		}
	}()
	ts := startServer(t, agentBackend{a}, nil)
	defer ts.stop(t) // before the agent closes
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()

	// PAP over raw HTTP, as curl or the PAM module sends it.
	var res AuthenResult
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, &res); r.status != 200 || res.Result != ResultPass || res.Server != srv.Addr() {
		t.Fatalf("pap: %d %s", r.status, r.body)
	}
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "bad"}, &res); res.Result != ResultFail || res.Error.Code != "authentication_failed" {
		t.Fatalf("pap with a bad password: %d %s", r.status, r.body)
	}

	// ASCII: the server asks for the user, the password (no echo), an OTP (no echo) and a colour (echo).
	var seen []Prompt
	res2, err := ts.client.Authenticate(ctx, AuthenRequest{}, func(_ context.Context, p Prompt) (string, error) {
		seen = append(seen, p)
		switch p.Kind {
		case PromptUser:
			return "carol", nil
		case PromptPassword:
			return "pw", nil
		}
		if p.Message == "OTP: " {
			return "123", nil
		}
		return "blue", nil
	})
	if err != nil || res2.Result != ResultPass || res2.User != "carol" {
		t.Fatalf("ascii: %+v %v", res2, err)
	}
	want := []struct {
		kind string
		echo bool
	}{{PromptUser, true}, {PromptPassword, false}, {PromptData, false}, {PromptData, true}}
	if len(seen) != len(want) {
		t.Fatalf("prompts %+v", seen)
	}
	for i, w := range want {
		if seen[i].Kind != w.kind || seen[i].Echo != w.echo || seen[i].Message == "" {
			t.Errorf("prompt %d: %+v, want kind %s echo %v", i, seen[i], w.kind, w.echo)
		}
	}

	// A wrong OTP is a FAIL from the server, through the client's taxonomy.
	_, err = ts.client.Authenticate(ctx, AuthenRequest{User: "carol"}, func(_ context.Context, p Prompt) (string, error) {
		if p.Kind == PromptPassword {
			return "pw", nil
		}
		return "000", nil
	})
	if !errors.Is(err, tacplus.ErrAuthenticationFailed) {
		t.Fatalf("wrong otp: %v", err)
	}

	// Authorization and accounting.
	ar, err := ts.client.Authorize(ctx, AuthorRequest{User: "alice", Cmd: "show", Args: []string{"version"}})
	if err != nil || ar.Result != ResultPermit || !slices.Contains(ar.Args, "priv-lvl=15") {
		t.Fatalf("authorize: %+v %v", ar, err)
	}
	if _, err := ts.client.Authorize(ctx, AuthorRequest{User: "alice", Cmd: "reload"}); !errors.Is(err, tacplus.ErrDenied) {
		t.Fatalf("authorize reload: %v", err)
	}
	if _, err := ts.client.Account(ctx, AcctRequest{User: "alice", Flags: FlagStart, TaskID: "77", AV: []string{"service=shell"}}); err != nil {
		t.Fatalf("account: %v", err)
	}
	recs := srv.Accounting()
	if len(recs) != 1 || recs[0].TaskID != "77" || recs[0].User != "alice" || recs[0].Flags != tacplus.AcctFlagStart {
		t.Fatalf("server's accounting records %+v", recs)
	}
	st, err := ts.client.Status(ctx)
	if err != nil || len(st.Servers) != 1 || st.Servers[0].Addr != srv.Addr() {
		t.Fatalf("status %+v %v", st, err)
	}
	if r := ts.do(t, http.MethodGet, "/v1/status", ""); r.status != 200 {
		t.Fatalf("raw status %d", r.status)
	}
}
