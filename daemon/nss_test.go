package daemon

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/nsscache"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestPasswdEndToEnd: GET /v1/passwd learns a user's level from a real authorization on the test server
// (service=shell, empty cmd), maps it to its template, answers later lookups from the cache, and answers
// "notfound" for a user the server refuses.
func TestPasswdEndToEnd(t *testing.T) {
	key := []byte("daemon-nss-key-0123")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Users: map[string]tacplustest.User{"alice": {Password: "pw"}, "bob": {Password: "pw"}},
		AuthorRules: []tacplustest.AuthorRule{
			{User: "alice", Service: "shell", Permit: true, Args: []string{"priv-lvl=15"}},
			{User: "bob", Service: "shell", Permit: true, Args: []string{"priv-lvl=2"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tpl := []nsscache.Template{
		{Name: "tacacs15", MinPriv: 15, MaxPriv: 15, UID: 2015, GID: 2015, Home: "/home/%u", Shell: "/bin/bash"},
		{Name: "tacacs1", MinPriv: 1, MaxPriv: 14, UID: 2001, GID: 2001, Home: "/home/tacacs1", Shell: "/bin/bash"},
	}
	d, err := New(Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: key, Timeout: 5 * time.Second}}},
		Groups: []string{"default"}, NSS: &nsscache.Config{Templates: tpl}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	sock := filepath.Join(t.TempDir(), "tacagent.sock")
	if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
		t.Fatal(err)
	}
	cl := localapi.NewClient(sock)
	ask := func(name string) localapi.PasswdResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := cl.PasswdByName(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	if r := ask("alice"); r.Result != localapi.ResultFound || *r.Passwd != (localapi.Passwd{Name: "alice", UID: 2015, GID: 2015,
		Dir: "/home/alice", Shell: "/bin/bash"}) {
		t.Fatalf("alice: %+v %+v", r, r.Passwd)
	}
	if r := ask("bob"); r.Result != localapi.ResultFound || r.Passwd.UID != 2001 {
		t.Fatalf("bob: %+v", r)
	}
	if r := ask("mallory"); r.Result != localapi.ResultNotFound {
		t.Fatalf("mallory: %+v", r)
	}
	n := len(srv.Authorizations())
	for _, a := range srv.Authorizations() {
		if len(a.Args) != 2 || a.Args[0] != "service=shell" || a.Args[1] != "cmd=" {
			t.Errorf("lookup sent %q, want service=shell cmd=", a.Args)
		}
	}
	for range 5 {
		ask("alice")
		ask("mallory")
	}
	if got := len(srv.Authorizations()); got != n {
		t.Errorf("%d authorizations after cached lookups, want %d", got, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := cl.PasswdByUID(ctx, 2015); err != nil || r.Result != localapi.ResultFound || r.Passwd.Name != "tacacs15" {
		t.Fatalf("uid 2015: %+v %v", r, err)
	}
	m := d.Metrics().NSS
	if testutil.ToFloat64(m.Cache.WithLabelValues("hit")) != 5 || testutil.ToFloat64(m.Cache.WithLabelValues("negative_hit")) != 5 ||
		testutil.ToFloat64(m.Answers.WithLabelValues("name", "found")) != 7 {
		t.Errorf("metrics: hit %v negative_hit %v found %v", testutil.ToFloat64(m.Cache.WithLabelValues("hit")),
			testutil.ToFloat64(m.Cache.WithLabelValues("negative_hit")), testutil.ToFloat64(m.Answers.WithLabelValues("name", "found")))
	}
}

// TestPasswdReload: a reload applies changed templates to cached users at once, and a reload without
// templates answers every name "notfound" (the cache is stopped).
func TestPasswdReload(t *testing.T) {
	key := []byte("daemon-nss-key-0123")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Users:       map[string]tacplustest.User{"alice": {Password: "pw"}},
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Service: "shell", Permit: true, Args: []string{"priv-lvl=15"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	settings := func(uid uint32) Settings {
		s := Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: key, Timeout: 5 * time.Second}}},
			Groups: []string{"default"}}
		if uid != 0 {
			s.NSS = &nsscache.Config{Templates: []nsscache.Template{{Name: "t15", MinPriv: 15, MaxPriv: 15, UID: uid, GID: uid,
				Home: "/h", Shell: "/bin/sh"}}}
		}
		return s
	}
	d, err := New(settings(3000), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	b := d.Backend().(localapi.PasswdBackend)
	ask := func() localapi.PasswdResult {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := b.PasswdByName(ctx, localapi.Caller{}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ask(); r.Result != localapi.ResultFound || r.Passwd.UID != 3000 {
		t.Fatalf("before the reload: %+v", r)
	}
	if err := d.Reload(settings(3001)); err != nil {
		t.Fatal(err)
	}
	n := len(srv.Authorizations())
	if r := ask(); r.Result != localapi.ResultFound || r.Passwd.UID != 3001 || len(srv.Authorizations()) != n {
		t.Fatalf("after the reload: %+v (%d new authorizations; the cached level must be kept)", r, len(srv.Authorizations())-n)
	}
	if err := d.Reload(settings(0)); err != nil {
		t.Fatal(err)
	}
	if r := ask(); r.Result != localapi.ResultNotFound {
		t.Fatalf("templates removed: %+v", r)
	}
}

// BenchmarkPasswdCached measures a cached GET /v1/passwd against GET /v1/status on the same socket and
// client in the same run (the baseline: one local API round trip that asks no server). Report the ratio.
func BenchmarkPasswdCached(b *testing.B) {
	key := []byte("daemon-nss-key-0123")
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Users:       map[string]tacplustest.User{"alice": {Password: "pw"}},
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Service: "shell", Permit: true, Args: []string{"priv-lvl=15"}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	d, err := New(Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: key, Timeout: 5 * time.Second}}},
		Groups: []string{"default"}, NSS: &nsscache.Config{Templates: []nsscache.Template{{Name: "t15", MinPriv: 15,
			MaxPriv: 15, UID: 3000, GID: 3000, Home: "/h", Shell: "/bin/sh"}}}}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	}()
	sock := filepath.Join(b.TempDir(), "tacagent.sock")
	if err := d.ServeAPI(sock, 0o600, localapi.Config{}); err != nil {
		b.Fatal(err)
	}
	cl := localapi.NewClient(sock)
	ctx := context.Background()
	if r, err := cl.PasswdByName(ctx, "alice"); err != nil || r.Result != localapi.ResultFound {
		b.Fatalf("%+v %v", r, err)
	}
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			if _, err := cl.Status(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("passwd-cached", func(b *testing.B) {
		for b.Loop() {
			if r, err := cl.PasswdByName(ctx, "alice"); err != nil || r.Result != localapi.ResultFound {
				b.Fatal(r, err)
			}
		}
	})
}
