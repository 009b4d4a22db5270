package daemon

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/config"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

const testKey = "daemon-security-key-0123"

// startServer runs a real TACACS+ test server with alice (password pw, may run show and enable).
func startServer(t *testing.T) *tacplustest.Server {
	t.Helper()
	srv, err := tacplustest.Start(tacplustest.Config{Key: []byte(testKey), SingleConnect: true,
		Users:       map[string]tacplustest.User{"alice": {Password: "pw"}},
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: ".*", Permit: true}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func settingsFor(srv *tacplustest.Server) Settings {
	return Settings{Agent: agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: []byte(testKey)}}}, Groups: []string{"default"}}
}

func startDaemon(t *testing.T, s Settings, log zerolog.Logger) *Daemon {
	t.Helper()
	d, err := New(s, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	return d
}

func login(ctx context.Context, b localapi.Backend) error {
	_, err := b.Authenticate(ctx, localapi.Caller{}, localapi.AuthenRequest{User: "alice", Password: localapi.Secret("pw"), Type: "pap"}, nil)
	return err
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestIdleMetricsFloodDoesNotStarveLogins plays the local user who holds thousands of idle connections
// to /metrics. The test lowers RLIMIT_NOFILE so that an uncapped listener, accepting them all, would leave
// no descriptor for the agent's server connection or the test server: the logins after the flood must
// still succeed, and the daemon must hold no more than its cap of the flood's connections.
func TestIdleMetricsFloodDoesNotStarveLogins(t *testing.T) {
	const flood = 2000
	srv := startServer(t)
	s := settingsFor(srv)
	s.MetricsAddr = "127.0.0.1:0"
	s.MetricsMaxConns = 64
	d := startDaemon(t, s, zerolog.Nop())

	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	// Room for the flood's client ends, the cap and some working space; not for 2000 more.
	limited := rl
	limited.Cur = uint64(before + flood + 400)
	if limited.Cur > rl.Cur {
		t.Skipf("RLIMIT_NOFILE %d is below what the test needs (%d)", rl.Cur, limited.Cur)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &limited); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl) }()

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < flood; i++ {
		c, err := net.DialTimeout("tcp", d.HTTPAddr(), 10*time.Second)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// Give an uncapped listener every chance to accept the whole flood before the logins: the logins
	// themselves run for a while, and the descriptor count is read after them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := d.Backend()
	for i := 0; i < 20; i++ {
		if err := login(ctx, b); err != nil {
			t.Fatalf("login %d under a /metrics flood: %v", i, err)
		}
	}
	grown := openFDs(t) - before - flood
	t.Logf("descriptors beyond the flood's client ends: %d (cap 64)", grown)
	if grown > 64+100 {
		t.Fatalf("the daemon holds %d more descriptors than the flood's clients: the /metrics cap of 64 did not hold", grown)
	}
}

// TestSocketDirectoryChecked: a socket directory writable by others, or owned by another user, is refused
// before anything is created in it.
func TestSocketDirectoryChecked(t *testing.T) {
	srv := startServer(t)
	d := startDaemon(t, settingsFor(srv), zerolog.Nop())
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	err := d.ServeAPI(filepath.Join(open, "tacagent.sock"), 0o660, localapi.Config{})
	if err == nil || !strings.Contains(err.Error(), "0777") {
		t.Fatalf("socket in a 0777 directory: %v, want refused", err)
	}
	if _, err := os.Lstat(filepath.Join(open, "tacagent.sock")); !os.IsNotExist(err) {
		t.Fatalf("a socket was created in the refused directory (%v)", err)
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		if err := os.Mkdir(other, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		err := d.ServeAPI(filepath.Join(other, "tacagent.sock"), 0o660, localapi.Config{})
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("socket in a directory owned by nobody: %v, want refused", err)
		}
	} else {
		t.Log("not root: the wrong-owner case is covered by internal/secfile's test only when run as root")
	}
}

// TestPlaintextWarning: every server reached without TLS on a non-loopback address gets a warning that
// says an on-path attacker can turn a FAIL into a PASS; loopback servers do not.
func TestPlaintextWarning(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	warnPlaintext(log, Settings{Agent: agent.Config{Servers: []agent.Server{
		{Addr: "192.0.2.10:49"}, {Addr: "127.0.0.1:49"}, {Addr: "[2001:db8::1]:49"}, {Addr: "localhost:49"},
	}}})
	out := buf.String()
	if n := strings.Count(out, "FAIL into a PASS"); n != 2 {
		t.Fatalf("%d warnings, want 2 (the two non-loopback servers):\n%s", n, out)
	}
	if !strings.Contains(out, "192.0.2.10:49") || !strings.Contains(out, "[2001:db8::1]:49") || strings.Contains(out, "127.0.0.1") {
		t.Fatalf("warnings name the wrong servers:\n%s", out)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestAuthorizeArgumentsNotLogged: at info an authorization logs its command, never its arguments; at
// debug the arguments appear, except for a secret-bearing command's.
func TestAuthorizeArgumentsNotLogged(t *testing.T) {
	srv := startServer(t)
	for _, level := range []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel} {
		var buf syncBuf
		d := startDaemon(t, settingsFor(srv), zerolog.New(&buf).Level(level))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		b := d.Backend()
		if _, err := b.Authorize(ctx, localapi.Caller{}, localapi.AuthorRequest{User: "alice", Cmd: "show", Args: []string{"plain-arg-4711"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Authorize(ctx, localapi.Caller{}, localapi.AuthorRequest{User: "alice", Cmd: "enable", Args: []string{"secret-arg-0815"}}); err != nil {
			t.Fatal(err)
		}
		cancel()
		out := buf.String()
		if strings.Contains(out, "secret-arg-0815") {
			t.Errorf("level %s: a secret-bearing command's argument was logged:\n%s", level, out)
		}
		if got := strings.Contains(out, "plain-arg-4711"); got != (level == zerolog.DebugLevel) {
			t.Errorf("level %s: plain argument logged = %v, want %v:\n%s", level, got, level == zerolog.DebugLevel, out)
		}
		if !strings.Contains(out, `"cmd":"show"`) {
			t.Errorf("level %s: the command is not logged:\n%s", level, out)
		}
	}
}

// The config file's default list of secret-bearing commands is the daemon's.
func TestSecretCommandsDefaultsAgree(t *testing.T) {
	if !slices.Equal(config.DefaultSecretCommands, DefaultSecretCommands) {
		t.Errorf("config.DefaultSecretCommands %v != daemon.DefaultSecretCommands %v", config.DefaultSecretCommands, DefaultSecretCommands)
	}
}
