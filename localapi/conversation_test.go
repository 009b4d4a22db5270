package localapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/tacplus"
)

// TestConversationSteps walks ASCII logins step by step over raw HTTP, as the PAM module will.
func TestConversationSteps(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil)
	type step struct {
		answer  string
		abort   bool
		prompt  *Prompt // the prompt expected in the answer to this step; nil: the end
		result  string
		errCode string
	}
	tests := []struct {
		name  string
		start AuthenRequest
		first *Prompt
		steps []step
	}{
		{"user and password prompts", AuthenRequest{}, &Prompt{"Username: ", true, PromptUser}, []step{
			{answer: "alice", prompt: &Prompt{"Password: ", false, PromptPassword}},
			{answer: "pw", result: ResultPass},
		}},
		{"three steps with otp", AuthenRequest{User: "otp"}, &Prompt{"Password: ", false, PromptPassword}, []step{
			{answer: "pw", prompt: &Prompt{"OTP: ", true, PromptData}},
			{answer: "123", result: ResultPass},
		}},
		{"wrong otp", AuthenRequest{User: "otp"}, &Prompt{"Password: ", false, PromptPassword}, []step{
			{answer: "pw", prompt: &Prompt{"OTP: ", true, PromptData}},
			{answer: "999", result: ResultFail, errCode: "authentication_failed"},
		}},
		{"password given up front", AuthenRequest{User: "bob", Password: "pw"}, nil, nil},
		{"abort", AuthenRequest{User: "bob"}, &Prompt{"Password: ", false, PromptPassword}, []step{
			{abort: true, result: ResultError, errCode: "aborted"},
		}},
		{"info message", AuthenRequest{User: "info"}, &Prompt{"Welcome", true, PromptInfo}, []step{
			{answer: "", result: ResultPass},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res AuthenResult
			if r := ts.post(t, "/v1/authenticate", tt.start, &res); r.status != 200 {
				t.Fatalf("start: %d %s", r.status, r.body)
			}
			if tt.first == nil {
				if res.Result != ResultPass || res.Conversation != "" {
					t.Fatalf("got %+v, want a pass in one step", res)
				}
				return
			}
			if res.Result != ResultPrompt || res.Prompt == nil || *res.Prompt != *tt.first || len(res.Conversation) != 32 {
				t.Fatalf("start: got %+v prompt %+v, want prompt %+v", res, res.Prompt, tt.first)
			}
			id := res.Conversation
			for i, st := range tt.steps {
				res = AuthenResult{}
				r := ts.post(t, "/v1/conversations/"+id, ConversationRequest{Answer: Secret(st.answer), Abort: st.abort}, &res)
				if r.status != 200 {
					t.Fatalf("step %d: %d %s", i, r.status, r.body)
				}
				if st.prompt != nil {
					if res.Result != ResultPrompt || *res.Prompt != *st.prompt || res.Conversation != id {
						t.Fatalf("step %d: got %s, want prompt %+v", i, r.body, st.prompt)
					}
					continue
				}
				code := ""
				if res.Error != nil {
					code = res.Error.Code
				}
				if res.Result != st.result || code != st.errCode || res.Prompt != nil || res.Conversation != "" {
					t.Fatalf("step %d: got %s, want %s/%s", i, r.body, st.result, st.errCode)
				}
			}
			// A finished conversation is gone.
			r := ts.post(t, "/v1/conversations/"+id, ConversationRequest{Answer: "x"}, nil)
			if r.status != http.StatusNotFound || r.err.Code != CodeConversationNotFound {
				t.Fatalf("after the end: %d %s", r.status, r.body)
			}
		})
	}
	if n := ts.convs.live(); n != 0 {
		t.Errorf("%d conversations left", n)
	}
}

func TestConversationExpires(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.ConversationTimeout = 50 * time.Millisecond })
	var res AuthenResult
	ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, &res)
	if res.Result != ResultPrompt {
		t.Fatalf("start: %+v", res)
	}
	// The backend hears that the conversation ended, without anybody answering.
	err := waitFor(t, b.convErrs, "the conversation to expire")
	if !errors.Is(err, tacplus.ErrAborted) || !errors.Is(err, tacplus.ErrTimeout) {
		t.Fatalf("the backend's conversation error: %v", err)
	}
	waitFor(t, b.ended, "the backend to return")
	r := ts.post(t, "/v1/conversations/"+res.Conversation, ConversationRequest{Answer: "pw"}, nil)
	if r.status != http.StatusGone || r.err.Code != CodeConversationExpired {
		t.Fatalf("late answer: %d %s", r.status, r.body)
	}
	// The Client maps it to the taxonomy too.
	_, cerr := ts.client.Authenticate(context.Background(), AuthenRequest{User: "bob"}, func(ctx context.Context, p Prompt) (string, error) {
		waitFor(t, b.convErrs, "the second conversation to expire")
		waitFor(t, b.ended, "the backend to return")
		return "pw", nil
	})
	if !errors.Is(cerr, ErrConversationExpired) || !errors.Is(cerr, tacplus.ErrTimeout) {
		t.Fatalf("client error %v", cerr)
	}
}

func TestConversationBusy(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil)
	var res AuthenResult
	ts.post(t, "/v1/authenticate", AuthenRequest{User: "slow"}, &res)
	id := res.Conversation
	first := make(chan rawResponse, 1)
	go func() { first <- ts.post(t, "/v1/conversations/"+id, ConversationRequest{Answer: "pw"}, nil) }()
	// The first answer is being handled (the backend holds it) when the second one comes.
	waitCond(t, func() bool {
		c, _ := ts.convs.get(id)
		if c == nil {
			return false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.state == convRunning
	})
	r := ts.post(t, "/v1/conversations/"+id, ConversationRequest{Answer: "pw"}, nil)
	if r.status != http.StatusConflict || r.err.Code != CodeConversationBusy {
		t.Fatalf("second answer: %d %s", r.status, r.body)
	}
	close(b.release)
	if r := waitFor(t, first, "the first answer"); r.status != 200 {
		t.Fatalf("first answer: %d %s", r.status, r.body)
	}
}

func TestConversationLimit(t *testing.T) {
	ts := startServer(t, newFakeBackend(), func(c *Config) { c.MaxConversations = 2 })
	var ids []string
	for i := 0; i < 2; i++ {
		var res AuthenResult
		ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, &res)
		if res.Result != ResultPrompt {
			t.Fatalf("start %d: %+v", i, res)
		}
		ids = append(ids, res.Conversation)
	}
	r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, nil)
	if r.status != http.StatusServiceUnavailable || r.err.Code != CodeTooManyConversations {
		t.Fatalf("third: %d %s", r.status, r.body)
	}
	// Ending one makes room, and the room exists by the time the abort is answered: the conversation
	// leaves the table before its end is announced, so no wait is needed here (this test used to race
	// the release under load).
	ts.post(t, "/v1/conversations/"+ids[0], ConversationRequest{Abort: true}, nil)
	var res AuthenResult
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, &res); r.status != 200 || res.Result != ResultPass {
		t.Fatalf("after an abort: %d %s", r.status, r.body)
	}
}

// TestStepTimeout: a backend that gives no next step within RequestTimeout gets its context cancelled,
// and the caller a 504.
func TestStepTimeout(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond })
	r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "hang", Type: TypePAP, Password: "x"}, nil)
	if r.status != http.StatusGatewayTimeout || r.err.Code != CodeStepTimeout {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if err := waitFor(t, b.ended, "the backend to return"); !errors.Is(err, tacplus.ErrAborted) {
		t.Fatalf("backend ended with %v", err)
	}
	r = ts.post(t, "/v1/authorize", AuthorRequest{User: "hang"}, nil)
	if r.status != 200 || !strings.Contains(r.body, `"code":"timeout"`) {
		t.Fatalf("authorize: %d %s", r.status, r.body)
	}
}

// TestShutdownWithConversations: at the drain deadline Shutdown ends every conversation still open (the
// backend's prompts are answered with an abort), answers the request waiting on a step, and waits for every
// goroutine.
func TestShutdownWithConversations(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil)
	const waiting = 5
	for i := 0; i < waiting; i++ {
		var res AuthenResult
		ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, &res)
		if res.Result != ResultPrompt {
			t.Fatalf("start %d: %+v", i, res)
		}
	}
	// One more request is open, waiting on the backend.
	hung := make(chan rawResponse, 1)
	go func() {
		hung <- ts.post(t, "/v1/authenticate", AuthenRequest{User: "hang", Type: TypePAP, Password: "x"}, nil)
	}()
	waitCond(t, func() bool { return ts.convs.live() == waiting+1 })
	ts.stop(t)
	for i := 0; i < waiting; i++ {
		if err := waitFor(t, b.convErrs, "conversation errors"); !errors.Is(err, tacplus.ErrAborted) {
			t.Fatalf("conversation error %v", err)
		}
	}
	r := waitFor(t, hung, "the open request")
	if r.status != 200 || !strings.Contains(r.body, `"code":"aborted"`) {
		t.Fatalf("open request: %d %s", r.status, r.body)
	}
	if n := ts.convs.live(); n != 0 {
		t.Fatalf("%d conversations left", n)
	}
	if _, err := ts.client.Status(context.Background()); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("after Shutdown: %v", err)
	}
}

// waitCond waits for cond with a deadline, yielding between checks.
func waitCond(t *testing.T, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, testWait, "the condition", cond)
}

// TestShutdownDrains: during a drain nothing new starts (503), but a conversation under way may still be
// answered and finishes with its real result, and Shutdown returns as soon as it has, before its deadline.
func TestShutdownDrains(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil)
	var res AuthenResult
	ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, &res)
	if res.Result != ResultPrompt || res.Prompt.Kind != PromptPassword {
		t.Fatalf("start: %+v", res)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stopWithin(t, testWait) }()
	waitCond(t, func() bool { return ts.draining.Load() })
	if r := ts.do(t, http.MethodPost, "/v1/authenticate", `{"user":"carol"}`); r.status != http.StatusServiceUnavailable ||
		!strings.Contains(r.body, CodeShuttingDown) {
		t.Fatalf("a new authentication during the drain: %d %s, want 503 %s", r.status, r.body, CodeShuttingDown)
	}
	var final AuthenResult
	r := ts.post(t, "/v1/conversations/"+res.Conversation, ConversationRequest{Answer: "pw"}, &final)
	if r.status != http.StatusOK || final.Result != ResultPass {
		t.Fatalf("answering during the drain: %d %s, want 200 pass", r.status, r.body)
	}
	if err := waitFor(t, stopped, "Shutdown to return"); err != nil {
		t.Fatalf("Shutdown returned %v after the last conversation ended, want nil", err)
	}
}

// TestConversationShare: a uid other than root holds at most ConversationShare conversations; the
// others' slots stay free, and an abort gives the slot back at once.
func TestConversationShare(t *testing.T) {
	// This process (uid 0) plays a local member of group root: rootUID points elsewhere.
	ts := startServer(t, newFakeBackend(), func(c *Config) { c.Group, c.rootUID, c.ConversationShare = "root", 4242, 2 })
	var ids []string
	for i := 0; i < 2; i++ {
		var res AuthenResult
		if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, &res); res.Result != ResultPrompt {
			t.Fatalf("start %d: %d %s", i, r.status, r.body)
		}
		ids = append(ids, res.Conversation)
	}
	r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, nil)
	if r.status != http.StatusServiceUnavailable || r.err.Code != CodeTooManyConversations || !strings.Contains(r.err.Message, "uid 0 already has 2") {
		t.Fatalf("over the share: %d %s", r.status, r.body)
	}
	if got := testutil.ToFloat64(ts.metrics.APIRejected.WithLabelValues("conversation_share")); got != 1 {
		t.Errorf("api_rejected_total{reason=conversation_share} = %v", got)
	}
	ts.post(t, "/v1/conversations/"+ids[0], ConversationRequest{Abort: true}, nil)
	var res AuthenResult
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob"}, &res); res.Result != ResultPrompt {
		t.Fatalf("after an abort: %d %s", r.status, r.body)
	}
}

// TestConnectionShare: a uid other than root holds at most ConnectionShare connections; one more is
// answered 503 too_many_connections before any handler runs, and a closed connection gives its place back.
// Root (the PAM module in sshd) is not shared out.
func TestConnectionShare(t *testing.T) {
	ts := startServer(t, newFakeBackend(), func(c *Config) { c.Group, c.rootUID, c.ConnectionShare = "root", 4242, 2 })
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitCond(t, func() bool { return ts.shares.connections(0) == 2 })
	_, err := ts.client.Status(context.Background())
	var e *Error
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &e) || e.Code != CodeTooManyConnections || !strings.Contains(e.Message, "uid 0 already has 2 connections") {
		t.Fatalf("over the share: %v", err)
	}
	if got := testutil.ToFloat64(ts.metrics.APIRejected.WithLabelValues("connection_share")); got != 1 {
		t.Errorf("api_rejected_total{reason=connection_share} = %v", got)
	}
	held[0].Close()
	waitCond(t, func() bool { return ts.shares.connections(0) == 1 })
	if _, err := ts.client.Status(context.Background()); err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}

	root := startServer(t, newFakeBackend(), func(c *Config) { c.ConnectionShare = 1 })
	c, err := net.Dial("unix", root.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := root.client.Status(context.Background()); err != nil {
		t.Fatalf("root was shared out: %v", err)
	}
}
