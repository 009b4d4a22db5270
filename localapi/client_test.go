package localapi

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

func TestClientResults(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil)
	ctx := context.Background()
	answers := func(as ...string) Conversation {
		return func(_ context.Context, p Prompt) (string, error) {
			if len(as) == 0 {
				return "", fmt.Errorf("unexpected prompt %q", p.Message)
			}
			a := as[0]
			as = as[1:]
			return a, nil
		}
	}
	tests := []struct {
		name    string
		req     AuthenRequest
		conv    Conversation
		result  string
		class   error // nil: success
		explain string
	}{
		{"pap pass", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, nil, ResultPass, nil, ""},
		{"pap fail", AuthenRequest{User: "alice", Type: TypePAP, Password: "x"}, nil, ResultFail, tacplus.ErrAuthenticationFailed, ""},
		{"ascii three prompts", AuthenRequest{}, answers("otp", "pw", "123"), ResultPass, nil, ""},
		{"stack denial", AuthenRequest{User: "down", Type: TypePAP, Password: "pw"}, nil, ResultFail, tacplus.ErrAuthenticationFailed,
			"core: server 192.0.2.1:49 timed out; core: server 192.0.2.2:49 said FAIL"},
		{"unreachable", AuthenRequest{User: "unreach", Type: TypePAP, Password: "pw"}, nil, ResultUnavailable, tacplus.ErrUnreachable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ts.client.Authenticate(ctx, tt.req, tt.conv)
			if res == nil || res.Result != tt.result {
				t.Fatalf("result %+v, %v; want %s", res, err, tt.result)
			}
			if (tt.class == nil) != (err == nil) || (tt.class != nil && !errors.Is(err, tt.class)) {
				t.Fatalf("error %v, want class %v", err, tt.class)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Explanation != tt.explain) {
				t.Fatalf("explanation %+v, want %q", e, tt.explain)
			}
		})
	}
	if _, err := ts.client.Authorize(ctx, AuthorRequest{User: "alice", Cmd: "reload"}); !errors.Is(err, tacplus.ErrDenied) {
		t.Errorf("deny: %v", err)
	}
	if r, err := ts.client.Authorize(ctx, AuthorRequest{User: "alice", Cmd: "show"}); err != nil || r.Result != ResultPermit {
		t.Errorf("permit: %+v %v", r, err)
	}
	if r, err := ts.client.Account(ctx, AcctRequest{User: "down", Flags: FlagStop, TaskID: "1"}); !errors.Is(err, tacplus.ErrUnreachable) || !r.Spooled {
		t.Errorf("account: %+v %v", r, err)
	}
	if _, err := ts.client.Authorize(ctx, AuthorRequest{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad request: %v", err)
	}
	st, err := ts.client.Status(ctx)
	if err != nil || st.APIVersion != Version || len(st.Servers) != 1 {
		t.Errorf("status %+v %v", st, err)
	}
}

// TestClientAborts: when the caller's conversation fails, or its context ends, the Client aborts the
// conversation so the agent stops waiting, and reports ErrAborted.
func TestClientAborts(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil)
	gaveUp := errors.New("user pressed ^C")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context
		conv Conversation
	}{
		{"conversation error", context.Background(), func(context.Context, Prompt) (string, error) { return "", gaveUp }},
		{"no conversation", context.Background(), nil},
		{"context cancelled at the prompt", ctx, func(context.Context, Prompt) (string, error) { cancel(); return "pw", nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.client.Authenticate(tt.ctx, AuthenRequest{User: "bob"}, tt.conv)
			if !errors.Is(err, tacplus.ErrAborted) {
				t.Fatalf("error %v, want ErrAborted", err)
			}
			// The agent side ended too: its backend heard the abort.
			if err := waitFor(t, b.convErrs, "the abort to reach the backend"); !errors.Is(err, tacplus.ErrAborted) {
				t.Fatalf("backend's conversation error %v", err)
			}
			waitFor(t, b.ended, "the backend to return")
		})
	}
	if n := ts.convs.live(); n != 0 {
		t.Errorf("%d conversations left", n)
	}
}

func TestClientNoAgent(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "nothing.sock"))
	defer c.Close()
	_, err := c.Status(context.Background())
	if !errors.Is(err, ErrNoAgent) || errors.Is(err, tacplus.ErrUnreachable) {
		t.Fatalf("got %v, want ErrNoAgent and not a server class", err)
	}
}

// TestErrorCodes: every code the Server can send maps back to something errors.Is can test, and every
// taxonomy class survives the trip.
func TestErrorCodes(t *testing.T) {
	for _, class := range tacplus.Classes {
		e := &Error{Code: tacplus.ClassName(class)}
		if !errors.Is(e, class) {
			t.Errorf("code %s does not match its class", e.Code)
		}
	}
	for _, code := range []string{CodeBadRequest, CodeForbidden, CodeNotFound, CodeUnknownVersion, CodeConversationNotFound,
		CodeMethodNotAllowed, CodeConversationBusy, CodeConversationExpired, CodeTooLarge, CodeRateLimited, CodeInternal,
		CodeTooManyConversations, CodeShuttingDown, CodeStepTimeout, CodeNoAgent} {
		if errors.Is(&Error{Code: code}, ErrUnexpectedStatus) {
			t.Errorf("code %s is not mapped", code)
		}
	}
	if !errors.Is(&Error{Code: "http_502"}, ErrUnexpectedStatus) {
		t.Error("an unknown code does not match ErrUnexpectedStatus")
	}
}

func TestSecretRedacted(t *testing.T) {
	req := AuthenRequest{User: "alice", Password: "hunter2"}
	for _, s := range []string{fmt.Sprint(req), fmt.Sprintf("%+v", req), fmt.Sprintf("%#v", req), fmt.Sprintf("%x", req.Password),
		fmt.Sprintf("%v", ConversationRequest{Answer: "hunter2"})} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("secret printed: %s", s)
		}
	}
}
