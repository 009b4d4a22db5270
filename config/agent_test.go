package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

func TestAgentMapping(t *testing.T) {
	c := mustParse(t, `servers:
  - name: tac1
    address: 127.0.0.1:4949
    key_file: KEYFILE
    timeout: 3s
    connect_timeout: 1s
    idle_timeout: never
    single_connect: false
    max_in_flight: 16
    connections_per_server: 3
    source_address: 127.0.0.1
    max_body: 4096
  - name: plain
    address: "::1"
    unencrypted: true
    allow_unencrypted: true
groups:
  - name: core
    servers: [tac1, plain]
  - name: clear
    servers: [plain]
dead_time: 1m
single_connect_hold_down: 2h
max_connection_age: 5m
backoff: {initial: 10ms, max: 1s}
authentication: {user_timeout: 45s}
`)
	got, err := c.Agent()
	if err != nil {
		t.Fatal(err)
	}
	want := agent.Config{
		Servers: []agent.Server{
			{Addr: "127.0.0.1:4949", Name: "tac1", Key: []byte(fileKey), Timeout: 3 * time.Second, DialTimeout: time.Second,
				IdleTimeout: -1, NoSingleConnect: true, MaxInFlight: 16, ConnectionsPerServer: 3, SourceAddr: "127.0.0.1", MaxBodyLen: 4096},
			{Addr: "[::1]:49", Name: "plain", Unencrypted: true, AllowUnencrypted: true, Timeout: DefaultTimeout,
				DialTimeout: DefaultConnectTimeout, IdleTimeout: DefaultIdleTimeout, MaxInFlight: DefaultMaxInFlight,
				ConnectionsPerServer: 1, MaxBodyLen: DefaultMaxBody},
		},
		Groups: []agent.Group{
			{Name: "core", Servers: []string{"127.0.0.1:4949", "[::1]:49"}},
			{Name: "clear", Servers: []string{"[::1]:49"}},
		},
		DeadTime: time.Minute, BackoffInitial: 10 * time.Millisecond, BackoffMax: time.Second, UserTimeout: 45 * time.Second,
		SingleConnectHoldDown: 2 * time.Hour, MaxConnectionAge: 5 * time.Minute,
	}
	// %#v shows every field, the key bytes included: this comparison is the one place a test prints them,
	// and only in its own variable.
	if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
		t.Errorf("Agent() mismatch (keys elided):\n got %s\nwant %s", strings.ReplaceAll(g, fileKey, "KEY"), strings.ReplaceAll(w, fileKey, "KEY"))
	}
	// The agent gets a copy: changing it does not change the Config's key.
	got.Servers[0].Key[0] ^= 0xff
	if string(c.Servers[0].key.b) != fileKey {
		t.Error("Agent() shares the key's memory")
	}
	// And the mapped configuration starts a real agent.
	a, err := agent.New(got)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestDefault(t *testing.T) {
	key := []byte("demo-key-0123456789")
	c := Default("127.0.0.1:4949", key)
	key[0] = 'X' // Default copied it
	ac, err := c.Agent()
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Servers) != 1 || ac.Servers[0].Addr != "127.0.0.1:4949" || string(ac.Servers[0].Key) != "demo-key-0123456789" ||
		ac.Servers[0].NoSingleConnect || len(ac.Groups) != 1 || ac.Groups[0].Name != DefaultGroup {
		t.Errorf("Default().Agent() = %+v", ac.Groups)
	}
	if c.Metrics.Address != DefaultMetricsAddress || c.API.Socket != DefaultSocket || c.Log.Level != DefaultLogLevel || c.Source() != "" {
		t.Errorf("Default sections: %+v", c)
	}
	_, err = Default("127.0.0.1", []byte("short-secret")).Agent()
	if ps := Problems(err); len(ps) != 1 || ps[0].Field != "servers[0]" || !strings.Contains(ps[0].Msg, "shorter than 16") {
		t.Errorf("short demo key: %v", err)
	}
	noSecret(t, "error", fmt.Sprint(err))
	c = Default("127.0.0.1", []byte("short-secret"))
	c.Servers[0].AllowShortKey = true
	c.API.Socket = "relative.sock"
	_, err = c.Agent()
	if ps := Problems(err); len(ps) != 1 || ps[0].Field != "api.socket" || ps[0].Line != 0 ||
		ps[0].Error() != `api.socket: "relative.sock" is not an absolute path` {
		t.Errorf("a Config built in Go reports fields without lines: %v", err)
	}
}

// TestNoKeyInOutput renders a loaded Config every way fmt can, and its errors and Changes, and looks for
// the keys.
func TestNoKeyInOutput(t *testing.T) {
	doc := expand(t, valid)
	c := mustParse(t, doc)
	if !c.Servers[0].HasKey() || !c.Servers[1].HasKey() {
		t.Fatal("keys not loaded")
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for i, v := range []any{c, *c, c.Servers, c.Servers[0], &c.Servers[1], c.Servers[0].key} {
			noSecret(t, fmt.Sprintf("fmt %s of value %d", verb, i), fmt.Sprintf(verb, v))
		}
	}
	d := mustParse(t, doc)
	t.Setenv(testEnv, "another-env-key-0123456789")
	d.Servers[1].key = nil
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	ch := Diff(c, d)
	noSecret(t, "Changes", fmt.Sprintf("%v %+v %#v", ch, ch, ch))
	if ch.String() != "servers changed [tac2 (key changed)]" {
		t.Errorf("Changes = %s", ch)
	}
}

func TestDiff(t *testing.T) {
	base := expand(t, valid+"log: {level: info}\n")
	a := mustParse(t, base)
	same := mustParse(t, base)
	if ch := Diff(a, same); !ch.Empty() || ch.String() != "no changes" {
		t.Errorf("identical configs: %s", ch)
	}
	// Comments, key order, explicit defaults and a different key file with the same content change nothing.
	same = mustParse(t, `# moved around
log: {level: info}
groups:
  - servers: [tac1, tac2]
    name: core
  - {name: backup, servers: [tac2]}
servers:
  - address: 127.0.0.1:4949
    name: tac1
    timeout: 5s
    key_file: KEYFILE
  - {name: tac2, address: "[::1]:49", key_env: TACAGENT_TEST_KEY, single_connect: true}
`)
	if ch := Diff(a, same); len(ch.Changed) != 1 || ch.Changed[0].Name != "tac1" || strings.Join(ch.Changed[0].Fields, ",") != "key_file" {
		t.Errorf("equivalent configs: %s", ch)
	}

	b := mustParse(t, `servers:
  - name: tac1
    address: 127.0.0.1:4949
    key_file: KEYFILE
    timeout: 2s
    max_in_flight: 8
  - name: tac3
    address: 127.0.0.3
    key_env: TACAGENT_TEST_KEY
groups:
  - name: core
    servers: [tac1, tac3]
dead_time: 10s
log: {level: debug}
api: {mode: "0600"}
authentication:
  stack:
    - tacacs: core
`)
	ch := Diff(a, b)
	want := "servers added [tac3]; servers removed [tac2]; servers changed [tac1 (key_file, timeout, max_in_flight)]; " +
		"sections changed [groups, dead_time, authentication, api, log]"
	if ch.String() != want {
		t.Errorf("Diff:\n got %s\nwant %s", ch, want)
	}
	if !ch.ServersChanged() || !ch.Section("log") || ch.Section("metrics") {
		t.Errorf("ServersChanged %t, log %t, metrics %t", ch.ServersChanged(), ch.Section("log"), ch.Section("metrics"))
	}

	// A rotated key: same path, new content.
	path := keyFile(t, fileKey+"\n", 0o600)
	doc := strings.ReplaceAll(valid, "KEYFILE", path)
	before := mustParse(t, doc)
	if err := os.WriteFile(path, []byte("rotated-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	after := mustParse(t, doc)
	if ch := Diff(before, after); ch.String() != "servers changed [tac1 (key changed)]" {
		t.Errorf("rotated key: %s", ch)
	}
	// A stack entry moved down the file by a comment is not a change.
	doc = expand(t, valid)
	s1 := mustParse(t, doc+"authentication:\n  stack:\n    - tacacs: core\n")
	s2 := mustParse(t, doc+"# a comment\nauthentication:\n  stack:\n    - tacacs: core\n")
	if ch := Diff(s1, s2); !ch.Empty() {
		t.Errorf("stack moved: %s", ch)
	}
}

type fakeAuth struct{ groups []string }

func (f *fakeAuth) Authenticate(_ context.Context, group string, _ policy.Request, _ policy.Conversation) (policy.Reply, error) {
	f.groups = append(f.groups, group)
	return policy.Reply{}, &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "no server"}
}

func TestBuildStack(t *testing.T) {
	c := mustParse(t, valid)
	auth := &fakeAuth{}
	st, err := c.BuildStack(auth)
	if err != nil {
		t.Fatal(err)
	}
	// The default stack: every group in order, each tried when the one before gave no answer.
	_, _, err = st.Authenticate(context.Background(), policy.Request{User: "alice", Password: "pw", Type: policy.PAP, Service: policy.Login}, nil, nil)
	if !errors.Is(err, tacplus.ErrUnreachable) || strings.Join(auth.groups, ",") != "core,backup" {
		t.Errorf("default stack: err %v, groups tried %v", err, auth.groups)
	}
	// A stack the config validated may still fail to build later (a local file removed): same error format.
	local := keyFile(t, "a:*\n", 0o600)
	c = mustParse(t, valid+"authentication:\n  stack:\n    - local: "+local+"\n")
	if err := os.Remove(local); err != nil {
		t.Fatal(err)
	}
	_, err = c.BuildStack(auth)
	if ps := Problems(err); len(ps) != 1 || ps[0].Field != "authentication.stack[0].local" || ps[0].Line != 15 || !errors.Is(err, tacplus.ErrConfig) {
		t.Errorf("BuildStack: %v", err)
	}
}
