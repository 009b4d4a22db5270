package localapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// sessionBackend is a fakeBackend that knows one audit session.
type sessionBackend struct{ *fakeBackend }

func (sessionBackend) AuditSessions(_ context.Context, auid, ses uint32) ([]AuditSession, error) {
	if auid == 1000 && ses == 3 {
		return []AuditSession{{AUID: 1000, SES: 3, User: "alice", TaskID: "t", Started: time.Unix(1, 0)}}, nil
	}
	return nil, nil
}

func TestSessionsAPI(t *testing.T) {
	ts := startServer(t, sessionBackend{newFakeBackend()}, nil)
	defer ts.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	got, err := ts.client.AuditSessions(ctx, 1000, 3)
	if err != nil || len(got) != 1 || got[0].User != "alice" {
		t.Fatalf("%v %+v", err, got)
	}
	if got, err := ts.client.AuditSessions(ctx, 1000, 4); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("none is an empty list: %v %#v", err, got)
	}
	for path, status := range map[string]int{"/v1/sessions?auid=x&ses=1": http.StatusBadRequest, "/v1/sessions": http.StatusBadRequest} {
		if r := ts.do(t, http.MethodGet, path, ""); r.status != status {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	if r := ts.do(t, http.MethodPost, "/v1/sessions?auid=1&ses=1", "{}"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", r.status)
	}
}

func TestSessionsAPINotImplementedOrNotRoot(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil)
	defer ts.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if _, err := ts.client.AuditSessions(ctx, 1, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a backend without sessions: %v", err)
	}
	// This process (uid 0) plays a member of the allowed group: not root.
	ts2 := startServer(t, sessionBackend{newFakeBackend()}, func(c *Config) { c.Group, c.rootUID = "root", 4242 })
	defer ts2.stop(t)
	if _, err := ts2.client.AuditSessions(ctx, 1000, 3); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a caller that is not root: %v", err)
	}
}
