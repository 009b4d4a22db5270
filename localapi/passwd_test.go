package localapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// passwdBackend answers NSS lookups from a map; "slow" waits for the caller's deadline.
type passwdBackend struct {
	*fakeBackend
	deadlines chan time.Duration
}

func (b passwdBackend) PasswdByName(ctx context.Context, _ Caller, name string) (PasswdResult, error) {
	if dl, ok := ctx.Deadline(); ok {
		b.deadlines <- time.Until(dl)
	}
	switch name {
	case "alice":
		return PasswdResult{Result: ResultFound, Passwd: &Passwd{Name: "alice", UID: 2015, GID: 2015, Dir: "/h", Shell: "/bin/sh"}}, nil
	case "slow":
		<-ctx.Done()
		return PasswdResult{Result: ResultUnavailable}, nil
	case "liar":
		return PasswdResult{Result: ResultFound}, nil // found without an entry: never passed on
	}
	return PasswdResult{Result: ResultNotFound}, nil
}

func (b passwdBackend) PasswdByUID(_ context.Context, _ Caller, uid uint32) (PasswdResult, error) {
	if uid == 2015 {
		return PasswdResult{Result: ResultFound, Passwd: &Passwd{Name: "tacacs15", UID: 2015, GID: 2015, Dir: "/h", Shell: "/bin/sh"}}, nil
	}
	return PasswdResult{Result: ResultNotFound}, nil
}

func TestPasswd(t *testing.T) {
	b := passwdBackend{fakeBackend: newFakeBackend(), deadlines: make(chan time.Duration, 16)}
	ts := startServer(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := ts.client.PasswdByName(ctx, "alice"); err != nil || r.Result != ResultFound || r.Passwd.UID != 2015 {
		t.Fatalf("alice: %+v %v", r, err)
	}
	<-b.deadlines
	if r, err := ts.client.PasswdByUID(ctx, 2015); err != nil || r.Result != ResultFound || r.Passwd.Name != "tacacs15" {
		t.Fatalf("uid 2015: %+v %v", r, err)
	}
	for name, want := range map[string]string{"mallory": ResultNotFound, "liar": ResultUnavailable,
		strings.Repeat("a", MaxPasswdName+1): ResultNotFound} {
		if r, err := ts.client.PasswdByName(ctx, name); err != nil || r.Result != want || r.Passwd != nil {
			t.Errorf("%.10s: %+v %v, want %s", name, r, err, want)
		}
	}
	// The caller's deadline bounds the lookup; without one, DefaultPasswdWait does.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if r, err := ts.client.PasswdByName(short, "slow"); err == nil && r.Result == ResultFound {
		t.Errorf("slow: %+v", r)
	}
	for len(b.deadlines) > 0 {
		<-b.deadlines
	}
	resp := ts.do(t, http.MethodGet, "/v1/passwd?name=slow", "")
	if d := <-b.deadlines; d > DefaultPasswdWait || !strings.Contains(resp.body, `"unavailable"`) {
		t.Errorf("no caller deadline: backend deadline %s, answer %s", d, resp.body)
	}
	for _, q := range []string{"", "?name=a&uid=1", "?uid=-1", "?uid=4294967296", "?name=a&name=b", "?user=a"} {
		if got := ts.do(t, http.MethodGet, "/v1/passwd"+q, ""); got.status != http.StatusBadRequest {
			t.Errorf("%q: HTTP %d, want 400", q, got.status)
		}
	}
	if got := ts.do(t, http.MethodPost, "/v1/passwd?name=alice", "{}"); got.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: HTTP %d, want 405", got.status)
	}
	if got := testutil.ToFloat64(ts.metrics.NSS.Answers.WithLabelValues("name", "found")); got != 1 {
		t.Errorf("nss_answers_total{name,found} = %v", got)
	}
}

// Without a PasswdBackend every lookup is "notfound": the module lets other sources answer.
func TestPasswdWithoutBackend(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := ts.client.PasswdByName(ctx, "alice"); err != nil || r.Result != ResultNotFound {
		t.Fatalf("%+v %v", r, err)
	}
}
