package localapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// A connection lost because the server sent a packet out of turn reaches the client as connection_lost
// with the cause protocol, and with the cause's text: errors.Is matches both classes.
func TestErrorCausesCrossTheAPI(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil)
	_, err := ts.client.Authorize(context.Background(), AuthorRequest{User: "desync", Cmd: "show"})
	if !errors.Is(err, tacplus.ErrConnectionLost) || !errors.Is(err, tacplus.ErrProtocol) {
		t.Fatalf("error %v: want both connection_lost and protocol", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != "connection_lost" || !slices.Equal(e.Causes, []string{"protocol"}) {
		t.Fatalf("error %+v: want code connection_lost, causes [protocol]", e)
	}
	if !strings.Contains(err.Error(), "seq_no 4, want 2") {
		t.Errorf("the message %q lost the cause's text", err.Error())
	}
	// A plain error has no causes, and a cause name that is not a class matches nothing.
	_, err = ts.client.Authorize(context.Background(), AuthorRequest{User: "down", Cmd: "show"})
	if !errors.As(err, &e) || len(e.Causes) != 0 || errors.Is(err, tacplus.ErrProtocol) {
		t.Errorf("unreachable: %+v", e)
	}
	forged := &Error{Code: "denied", Causes: []string{"no_such_class", "internal"}}
	if errors.Is(forged, ErrInternal) || !errors.Is(forged, tacplus.ErrDenied) {
		t.Errorf("causes outside the taxonomy must match nothing: %v", forged.Unwrap())
	}
}

// With service shell and no command, the pairs ask for the shell start: cmd= with an empty value.
func TestShellStartPairs(t *testing.T) {
	for _, c := range []struct {
		req  AuthorRequest
		want []string
	}{
		{AuthorRequest{User: "u"}, []string{"service=shell", "cmd="}},
		{AuthorRequest{User: "u", Service: "shell"}, []string{"service=shell", "cmd="}},
		{AuthorRequest{User: "u", Cmd: "show", Args: []string{"version"}}, []string{"service=shell", "cmd=show", "cmd-arg=version"}},
		{AuthorRequest{User: "u", Service: "ppp"}, []string{"service=ppp"}},
	} {
		if got := c.req.Pairs(); !slices.Equal(got, c.want) {
			t.Errorf("%+v.Pairs() = %v, want %v", c.req, got, c.want)
		}
	}
}
