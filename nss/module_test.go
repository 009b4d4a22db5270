package nss

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nsshost runs src/nsshost.c in the sandbox: the module's entry points called directly.
func nsshost(t *testing.T, s *sandbox, b *built, by, key string, buflen, count int) []string {
	t.Helper()
	r := s.run(t, b.nsshost, b.module, by, key, fmt.Sprint(buflen), fmt.Sprint(count))
	if r.code != 0 {
		t.Fatalf("nsshost: %s", r)
	}
	return strings.Split(strings.TrimSpace(r.out), "\n")
}

// settle looks key up until the answer is not "unavailable": a name's first lookup waits for one
// authorization only as long as the module's timeout (50 ms), and on a loaded machine the answer may come
// later, into the agent's cache, for the next lookup (docs/nss.md).
func settle(t *testing.T, s *sandbox, b *built, by, key string) string {
	t.Helper()
	var got []string
	eventually(t, 20*time.Second, "an answer for "+key, func() bool {
		got = nsshost(t, s, b, by, key, 1024, 1)
		return !strings.HasPrefix(got[0], "unavailable")
	})
	return got[0]
}

// TestEntryPoints: getpwnam_r and getpwuid_r of the module against the real daemon and test server.
func TestEntryPoints(t *testing.T) {
	b := require(t)
	srv := testServer(t)
	s := newSandbox(t, b)
	d := startDaemon(t, b, s, srv.Addr())

	for _, tc := range []struct {
		by, key string
		want    string
	}{
		{"name", "alice", fmt.Sprintf("success 0 alice:*:%d:%d:TACACS+ alice:/run/home/alice:/bin/bash", uid15, gidUsers)},
		{"name", "bob", fmt.Sprintf("success 0 bob:*:%d:%d::/run/home/tacacs1:/bin/sh", uid1, gidUsers)},
		{"name", "carol", "notfound 2"},   // permitted at level 0: no template
		{"name", "mallory", "notfound 2"}, // the server refuses
		{"name", "tacacs15", fmt.Sprintf("success 0 tacacs15:*:%d:%d:TACACS+ tacacs15:/run/home/tacacs15:/bin/bash", uid15, gidUsers)},
		{"uid", fmt.Sprint(uid15), fmt.Sprintf("success 0 tacacs15:*:%d:%d:TACACS+ tacacs15:/run/home/tacacs15:/bin/bash", uid15, gidUsers)},
		{"uid", fmt.Sprint(uid1), fmt.Sprintf("success 0 tacacs1:*:%d:%d::/run/home/tacacs1:/bin/sh", uid1, gidUsers)},
		{"uid", "12345", "notfound 2"},
		{"uid", "0", "notfound 2"},
	} {
		if got := settle(t, s, b, tc.by, tc.key); got != tc.want {
			t.Errorf("%s %s = %q, want %q", tc.by, tc.key, got, tc.want)
		}
	}
	// The lookups were authorizations with service=shell and an empty cmd, one per name.
	seen := map[string]int{}
	for _, a := range srv.Authorizations() {
		seen[a.User]++
		if strings.Join(a.Args, " ") != "service=shell cmd=" {
			t.Errorf("lookup of %s sent %q", a.User, a.Args)
		}
	}
	if seen["alice"] != 1 || seen["bob"] != 1 || seen["mallory"] != 1 || seen["tacacs15"] != 0 {
		t.Errorf("authorizations by user: %v", seen)
	}
	// Answered from the agent's cache now (positive and negative): no new authorization.
	before := len(srv.Authorizations())
	nsshost(t, s, b, "name", "alice", 1024, 3)
	nsshost(t, s, b, "name", "mallory", 1024, 3)
	if n := len(srv.Authorizations()); n != before {
		t.Errorf("%d authorizations for cached names", n-before)
	}
	if d.metric(`tacagent_nss_cache_total{outcome="hit"}`) < 3 || d.metric(`tacagent_nss_cache_total{outcome="negative_hit"}`) < 1 {
		t.Errorf("cache metrics: hit %v negative_hit %v", d.metric(`tacagent_nss_cache_total{outcome="hit"}`),
			d.metric(`tacagent_nss_cache_total{outcome="negative_hit"}`))
	}
	// The module's own negative cache: three lookups of a refused name in one process are one request.
	apiBefore := d.metric(`tacagent_api_requests_total{code="notfound",endpoint="passwd"}`)
	if got := nsshost(t, s, b, "name", "mallory", 1024, 3); strings.Join(got, ",") != "notfound 2,notfound 2,notfound 2" {
		t.Errorf("mallory x3: %q", got)
	}
	if n := d.metric(`tacagent_api_requests_total{code="notfound",endpoint="passwd"}`) - apiBefore; n != 1 {
		t.Errorf("%v requests reached the agent for 3 lookups of one refused name, want 1", n)
	}
	// Names the agent never maps are not asked about.
	apiBefore = d.metric(`tacagent_api_requests_total{code="notfound",endpoint="passwd"}`)
	for _, n := range []string{"-rf", "a:b", "12345", "x y", strings.Repeat("a", 65)} {
		if got := nsshost(t, s, b, "name", n, 1024, 1); got[0] != "notfound 2" {
			t.Errorf("%q: %q", n, got)
		}
	}
	if n := d.metric(`tacagent_api_requests_total{code="notfound",endpoint="passwd"}`) - apiBefore; n != 0 {
		t.Errorf("%v requests for names the agent never maps", n)
	}
}

// TestBufferTooSmall: a buffer too small is ERANGE with NSS_STATUS_TRYAGAIN (glibc then grows it), at
// every size short of the entry, and never a write past it (nsshost's buffer is exactly buflen bytes on
// the heap).
func TestBufferTooSmall(t *testing.T) {
	b := require(t)
	srv := testServer(t)
	s := newSandbox(t, b)
	startDaemon(t, b, s, srv.Addr())
	entry := fmt.Sprintf("alice:*:%d:%d:TACACS+ alice:/run/home/alice:/bin/bash", uid15, gidUsers)
	settle(t, s, b, "name", "alice")
	need := len("alice") + len("*") + len("TACACS+ alice") + len("/run/home/alice") + len("/bin/bash") + 5
	for _, n := range []int{0, 1, 10, need - 1} {
		if got := nsshost(t, s, b, "name", "alice", n, 1); got[0] != "tryagain 34" {
			t.Errorf("buflen %d: %q, want tryagain ERANGE (34)", n, got)
		}
	}
	if got := nsshost(t, s, b, "name", "alice", need, 1); got[0] != "success 0 "+entry {
		t.Errorf("buflen %d (exactly enough): %q", need, got)
	}
}

// TestGetentAndID: glibc finds the module through nsswitch.conf ("passwd: files tacagent"): getent and id
// see TACACS+ users, files still answers first, unknown users fall through to "not found".
func TestGetentAndID(t *testing.T) {
	b := require(t, "id")
	srv := testServer(t)
	s := newSandbox(t, b)
	startDaemon(t, b, s, srv.Addr())
	settle(t, s, b, "name", "alice")
	settle(t, s, b, "name", "mallory")
	if r := s.run(t, "getent", "passwd", "alice"); r.code != 0 ||
		r.out != fmt.Sprintf("alice:*:%d:%d:TACACS+ alice:/run/home/alice:/bin/bash\n", uid15, gidUsers) {
		t.Errorf("getent passwd alice: %s", r)
	}
	if r := s.run(t, "getent", "passwd", fmt.Sprint(uid15)); r.code != 0 || !strings.HasPrefix(r.out, "tacacs15:*:") {
		t.Errorf("getent passwd %d: %s", uid15, r)
	}
	if r := s.run(t, "getent", "passwd", "mallory"); r.code != 2 || r.out != "" {
		t.Errorf("getent passwd mallory: %s, want exit 2 (not found)", r)
	}
	if r := s.run(t, "getent", "passwd", localUser); r.code != 0 || !strings.HasPrefix(r.out, localUser+":x:") {
		t.Errorf("getent passwd %s (files): %s", localUser, r)
	}
	if r := s.run(t, "getent", "passwd", "root"); r.code != 0 || !strings.HasPrefix(r.out, "root:x:0:0:") {
		t.Errorf("getent passwd root (files): %s", r)
	}
	if r := s.run(t, "id", "alice"); r.code != 0 || !strings.HasPrefix(r.out, fmt.Sprintf("uid=%d(tacacs15) gid=%d(users)", uid15, gidUsers)) {
		t.Errorf("id alice: %s", r)
	}
	// A user of the template (gid users, the socket's group) resolves names as root does; a local user
	// outside api.group cannot reach the socket and gets nothing from the module, files still answering.
	if _, err := exec.LookPath("setpriv"); err == nil {
		as := func(uid, gid int, args ...string) result {
			return s.run(t, "setpriv", append([]string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups"}, args...)...)
		}
		if r := as(uid15, gidUsers, "getent", "passwd", "alice", fmt.Sprint(uid15)); r.code != 0 ||
			!strings.HasPrefix(r.out, "alice:*:") || !strings.Contains(r.out, "\ntacacs15:*:") {
			t.Errorf("getent as uid %d: %s", uid15, r)
		}
		if r := as(65534, 65534, "getent", "passwd", "alice"); r.code != 2 {
			t.Errorf("getent passwd alice as nobody: %s, want exit 2", r)
		}
		if r := as(65534, 65534, "getent", "passwd", "root"); r.code != 0 {
			t.Errorf("getent passwd root as nobody: %s", r)
		}
	}
	// The host is untouched: outside the namespace nobody knows alice.
	if out, err := exec.Command("getent", "passwd", "alice").Output(); err == nil || len(out) != 0 {
		t.Errorf("getent passwd alice on the host: %q %v", out, err)
	}
}

// TestAgentDownOrHanging: with no agent a lookup is UNAVAIL at once (ENOENT); an agent that accepts and
// never answers costs one timeout, after which the module holds off (UNAVAIL, EAGAIN) without connecting.
func TestAgentDownOrHanging(t *testing.T) {
	b := require(t)
	s := newSandbox(t, b)
	if got := nsshost(t, s, b, "name", "alice", 1024, 1); got[0] != "unavailable 2" {
		t.Errorf("no agent: %q, want unavailable ENOENT", got)
	}
	if r := s.run(t, "getent", "passwd", "alice"); r.code != 2 {
		t.Errorf("getent with no agent: %s, want exit 2", r)
	}
	// A hanging agent: root listens (so the peer check passes) and never answers.
	if err := os.MkdirAll(filepath.Dir(s.socket), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", s.socket)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			held = append(held, c)
		}
	}()
	defer func() { l.Close(); <-done }()
	got := nsshost(t, s, b, "name", "alice", 1024, 3)
	if strings.Join(got, ",") != "unavailable 11,unavailable 11,unavailable 11" {
		t.Errorf("hanging agent: %q, want unavailable EAGAIN (11) three times", got)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 lookups, want 1 (the hold-off after a timeout)", n)
	}
}

// fakeAgent runs pam's src/fakeagent.c at the sandbox's socket as uid, answering every request with body.
func fakeAgent(t *testing.T, b *built, s *sandbox, uid int, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(s.socket), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(b.fake, s.socket, fmt.Sprint(uid), body, filepath.Join(s.dir, "fake.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.Remove(s.socket) })
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "READY"
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the fake agent did not start")
		}
	case <-time.After(commandTimeout):
		t.Fatal("the fake agent did not start in time")
	}
}

// TestUntrustedAnswers: an entry is taken only from a socket served by root, only for the name or uid
// asked, never with uid or gid 0, and never with a field a passwd line cannot hold.
func TestUntrustedAnswers(t *testing.T) {
	b := require(t)
	entry := func(name string, uid, gid int, gecos string) string {
		return fmt.Sprintf(`{"result":"found","passwd":{"name":%q,"uid":%d,"gid":%d,"gecos":%q,"dir":"/tmp","shell":"/bin/sh"}}`,
			name, uid, gid, gecos)
	}
	for _, tc := range []struct {
		name string
		uid  int // the fake agent's
		body string
		want string
	}{
		{"served by uid 65534", 65534, entry("alice", 1000, 1000, ""), "unavailable 11"},
		{"another user", 0, entry("bob", 1000, 1000, ""), "unavailable 11"},
		{"uid 0", 0, entry("alice", 0, 1000, ""), "unavailable 11"},
		{"gid 0", 0, entry("alice", 1000, 0, ""), "unavailable 11"},
		{"colon in gecos", 0, entry("alice", 1000, 1000, "x:0:0"), "unavailable 11"},
		{"newline in gecos", 0, entry("alice", 1000, 1000, "a\nroot::0:0::/:/bin/sh"), "unavailable 11"},
		{"not JSON", 0, "{", "unavailable 11"},
		// Control: the same fake as root with a proper entry is believed, so the refusals above are the checks'.
		{"control", 0, entry("alice", 1000, 1000, "A & B"), "success 0 alice:*:1000:1000:A & B:/tmp:/bin/sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t, b)
			fakeAgent(t, b, s, tc.uid, tc.body)
			if got := nsshost(t, s, b, "name", "alice", 1024, 1); got[0] != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}
