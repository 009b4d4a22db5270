package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

func TestEntriesAndTimestamps(t *testing.T) {
	clock := newClock()
	agent := &fakeAgent{groups: map[string][]fakeServer{
		"core": {{addr: "192.0.2.1:49", err: timeoutAt("192.0.2.1:49")}, {addr: "192.0.2.2:49", attrs: []Attr{{"priv-lvl", "15"}}}},
	}}
	other := &scripted{kind: KindLocal}
	st, err := NewStack(clock.Now,
		Element{Name: "core", Handler: NewTacacs("core", agent), Control: Required},
		Element{Name: "second", Handler: other, Control: Required},
	)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{User: "alice", Password: "pw", Type: PAP, Service: Login, Port: "tty1", RemAddr: "198.51.100.7"}
	auth, rc, err := st.Authenticate(context.Background(), req, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Clock readings: 1 arrival, 2 core returned, 3 second returned.
	arrival, t1, t2 := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)
	if !rc.Request.Arrival.Equal(arrival) {
		t.Errorf("arrival %v, want %v", rc.Request.Arrival, arrival)
	}
	want := []AuthenticationEntry{
		{Kind: KindUser, Value: "alice", User: "alice", Handler: "core", HandlerKind: "tacacs", Server: "192.0.2.2:49",
			AuthenType: PAP, Time: t1, Attrs: []Attr{{"priv-lvl", "15"}}},
		{Kind: KindUser, Value: "alice", User: "alice", Handler: "second", HandlerKind: "local", AuthenType: PAP, Time: t2, Attrs: []Attr{}},
	}
	if fmt.Sprint(auth.Entries) != fmt.Sprint(want) {
		t.Errorf("entries\n  %v\nwant\n  %v", auth.Entries, want)
	}
	if v, ok := auth.Entries[0].Attr("priv-lvl"); !ok || v != "15" {
		t.Errorf("priv-lvl = %q, %t", v, ok)
	}
	if got := rc.Explain(); got != "core: server 192.0.2.1:49 timed out (no reply within 5s); core: server 192.0.2.2:49 said PASS; second: passed" {
		t.Errorf("Explain() = %q", got)
	}
	if got := auth.Entries[0].String(); got != "user=alice by core (tacacs 192.0.2.2:49, pap) at 2026-01-02T03:04:07Z priv-lvl=15" {
		t.Errorf("String() = %q", got)
	}

	// Enable: a second request adds a KindEnable entry to the same Authentication.
	en := Request{User: "alice", Password: "enpw", Type: PAP, Service: Enable, PrivLvl: 15}
	auth2, _, err := st.Authenticate(context.Background(), en, nil, auth)
	if err != nil {
		t.Fatal(err)
	}
	if len(auth2.Entries) != 4 || len(auth.Entries) != 2 {
		t.Fatalf("prior %d entries (want 2, untouched), new %d (want 4)", len(auth.Entries), len(auth2.Entries))
	}
	if e, ok := auth2.Lookup(KindEnable, "alice", "15", time.Time{}); !ok || e.Handler != "second" {
		t.Errorf("enable entry %v, %t", e, ok)
	}
}

func TestRenew(t *testing.T) {
	clock := newClock()
	h := &scripted{}
	st, _ := NewStack(clock.Now, Element{Name: "core", Handler: h, Control: MethodList})
	req := Request{User: "alice", Password: "pw", Type: PAP, Service: Login}

	first, _, err := st.Authenticate(context.Background(), req, nil, nil)
	if err != nil || h.calls != 1 {
		t.Fatalf("first: %v, calls %d", err, h.calls)
	}
	entryTime := first.Entries[0].Time

	// Without renew an earlier entry satisfies the request: no handler runs.
	got, rc, err := st.Authenticate(context.Background(), req, nil, first)
	if err != nil || h.calls != 1 || rc.Reused == nil || len(got.Entries) != 1 {
		t.Fatalf("reuse: err %v, calls %d, reused %v", err, h.calls, rc.Reused)
	}
	if !strings.HasPrefix(rc.Explain(), "satisfied by an earlier entry (user=alice by core") {
		t.Errorf("Explain() = %q", rc.Explain())
	}

	// With renew it does not: the handler runs, sees Renew, and the new entry is newer than the arrival.
	renew := req
	renew.Renew = true
	got, rc, err = st.Authenticate(context.Background(), renew, nil, first)
	if err != nil || h.calls != 2 || rc.Reused != nil {
		t.Fatalf("renew: err %v, calls %d, reused %v", err, h.calls, rc.Reused)
	}
	if e := got.Entries[0]; !e.Time.After(entryTime) || e.Time.Before(rc.Request.Arrival) {
		t.Errorf("renewed entry at %v; earlier %v, arrival %v", e.Time, entryTime, rc.Request.Arrival)
	}

	// An entry made exactly at the arrival counts ("at or after"); one a nanosecond earlier does not.
	arrival := t0.Add(time.Hour)
	a := &Authentication{Entries: []AuthenticationEntry{{Kind: KindUser, Value: "alice", User: "alice", Handler: "core", Time: arrival}}}
	r := Request{User: "alice", Service: Login, Renew: true, Arrival: arrival}
	if _, ok := a.Satisfies(r); !ok {
		t.Error("an entry made at the arrival does not satisfy renew")
	}
	r.Arrival = arrival.Add(time.Nanosecond)
	if _, ok := a.Satisfies(r); ok {
		t.Error("an entry made before the arrival satisfies renew")
	}
	r.Arrival = time.Time{}
	if _, ok := a.Satisfies(r); ok {
		t.Error("renew with no arrival time is satisfied")
	}

	// A handler that answers renew from a cache (an earlier time) is an error, not a success.
	cached := &scripted{reply: Reply{Server: "192.0.2.1:49", Time: t0}}
	st, _ = NewStack(clock.Now, Element{Name: "core", Handler: cached, Control: MethodList})
	_, rc, err = st.Authenticate(context.Background(), renew, nil, nil)
	if !errors.Is(err, tacplus.ErrConfig) || rc.Result != Error {
		t.Errorf("stale answer to renew: err %v, result %s", err, rc.Result)
	}
	// Without renew the cached time is accepted, and the entry keeps it.
	got, _, err = st.Authenticate(context.Background(), req, nil, nil)
	if err != nil || !got.Entries[0].Time.Equal(t0) {
		t.Errorf("cached answer without renew: err %v, entries %v", err, got)
	}
	// A request's own Arrival is kept; a missing one comes from the clock.
	fixed := renew
	fixed.Arrival = t0.Add(-time.Hour)
	_, rc, err = st.Authenticate(context.Background(), fixed, nil, nil)
	if err != nil || !rc.Request.Arrival.Equal(fixed.Arrival) {
		t.Errorf("arrival %v, err %v", rc.Request.Arrival, err)
	}
}

func TestAuthenticationSet(t *testing.T) {
	var a Authentication
	e := AuthenticationEntry{Kind: KindUser, Value: "bob", User: "bob", Handler: "core", Time: t0}
	a.Add(e)
	e.Time = t0.Add(time.Minute)
	a.Add(e) // same key: replaces
	e.Handler = "local"
	a.Add(e) // another handler: a second entry
	if len(a.Entries) != 2 || !a.Entries[0].Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("entries %v", a.Entries)
	}
	var nilAuth *Authentication
	if _, ok := nilAuth.Lookup(KindUser, "bob", "bob", time.Time{}); ok {
		t.Error("nil Authentication found an entry")
	}
	if c := nilAuth.Clone(); c == nil || len(c.Entries) != 0 {
		t.Error("nil Clone")
	}
}

// TestPasswordNeverPrinted: the password must not appear in any rendering of a request, its context,
// the stack's errors or a log line.
func TestPasswordNeverPrinted(t *testing.T) {
	const secret = "hunter2-Secret"
	req := Request{User: "alice", Password: secret, Type: PAP, Service: Login}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		out = append(out, fmt.Sprintf(verb, req), fmt.Sprintf(verb, req.Password), fmt.Sprintf(verb, &req))
	}
	j, _ := json.Marshal(req)
	out = append(out, string(j), req.String())
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("req", "password", req.Password, "req", req)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("req", "password", req.Password, "req", req)
	out = append(out, logBuf.String())

	h := &scripted{err: failAt("192.0.2.1:49", "no")}
	st, _ := NewStack(newClock().Now, Element{Name: "core", Handler: h, Control: Required})
	_, rc, err := st.Authenticate(context.Background(), req, nil, nil)
	out = append(out, err.Error(), fmt.Sprintf("%+v", rc), fmt.Sprintf("%#v", rc.Request), rc.Explain())
	for _, s := range out {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Errorf("password leaked: %s", s)
		}
	}
	if rc.Request.Password != "" {
		t.Error("RequestContext keeps the password")
	}
	if string(req.Password) != secret {
		t.Error("string(Password) must give the secret to handlers")
	}
}
