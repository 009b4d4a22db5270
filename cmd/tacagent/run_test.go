package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/config"
	"github.com/tacagent/tacagent/daemon"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/proxy"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestSIGTERMDuringSlowReload: a reload that never finishes (its apply blocks until the test releases it)
// must not delay SIGTERM: the signal loop returns the stop code while the reload is still stuck.
func TestSIGTERMDuringSlowReload(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	rl := &reloader{}
	rl.apply = func() {
		close(started)
		<-release
	}
	sig := make(chan os.Signal, 4)
	stopped := make(chan int, 1)
	go func() { stopped <- signalLoop(sig, rl, func(os.Signal) int { return 42 }) }()
	sig <- syscall.SIGHUP
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("SIGHUP did not start a reload within 20 s")
	}
	sig <- syscall.SIGHUP // folded into the pending slot; must not block the loop either
	sig <- syscall.SIGTERM
	select {
	case code := <-stopped:
		if code != 42 {
			t.Fatalf("signal loop returned %d, want the stop code 42", code)
		}
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("SIGTERM was not obeyed within 20 s while a reload was stuck")
	}
	close(release)
	select {
	case <-rl.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the reload goroutine did not exit after its reload ended")
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestReloadAppliesLogLevelAndLogsDiff: a reload that changes log.level applies it at once, and logs what
// changed (server fields, sections) without the key.
func TestReloadAppliesLogLevelAndLogsDiff(t *testing.T) {
	srv, err := tacplustest.Start(tacplustest.Config{Key: []byte(e2eKey), Users: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(e2eKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tacagent.yaml")
	write := func(timeout, level string) {
		doc := "servers:\n  - name: a\n    address: " + srv.Addr() + "\n    key_file: " + key + "\n    timeout: " + timeout +
			"\nmetrics:\n  address: \"\"\nlog:\n  level: " + level + "\n" +
			"accounting:\n  spool:\n    path: " + filepath.Join(dir, "spool.db") + "\n" // never the host's
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("5s", "info")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf lockedBuf
	lvl := &levelHook{}
	lvl.set(zerolog.InfoLevel)
	log := zerolog.New(&buf).Level(zerolog.DebugLevel).Hook(lvl)
	s, err := settingsFrom(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	dmn, err := daemon.New(s, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = dmn.Shutdown(ctx)
	}()
	rl := &reloader{path: path, cfg: cfg, dmn: dmn, log: log, level: lvl, levelFromFile: true}

	log.Debug().Msg("probe-before")
	write("6s", "debug")
	rl.reload()
	log.Debug().Msg("probe-after")
	out := buf.String()
	if strings.Contains(out, "probe-before") || !strings.Contains(out, "probe-after") {
		t.Fatalf("log.level did not go from info to debug on reload:\n%s", out)
	}
	if !strings.Contains(out, "servers changed [a (timeout)]") || !strings.Contains(out, "log") {
		t.Fatalf("the reload did not log its changes:\n%s", out)
	}
	if strings.Contains(out, e2eKey) {
		t.Fatalf("the log holds the key:\n%s", out)
	}
	if rl.cfg == cfg {
		t.Fatal("the reloader kept the old configuration after a good reload")
	}
	// A rotated key is logged as changed, and neither the old nor the new one appears.
	const rotated = "rotated-shared-key-9876543210"
	if err := os.WriteFile(key, []byte(rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rl.reload()
	out = buf.String()
	if !strings.Contains(out, "servers changed [a (key changed)]") {
		t.Fatalf("the key rotation was not logged as a change:\n%s", out)
	}
	if strings.Contains(out, e2eKey) || strings.Contains(out, rotated) {
		t.Fatalf("the log holds a key:\n%s", out)
	}
	// And back to info: debug lines stop.
	write("6s", "info")
	rl.reload()
	log.Debug().Msg("probe-info-again")
	if strings.Contains(buf.String(), "probe-info-again") {
		t.Fatal("log.level did not go back to info on reload")
	}
}

// TestConfigMapping: the configuration keys of the local API's limits, the metrics listener and the log
// reach the daemon's and the local API's settings; their defaults are the packages' own.
func TestConfigMapping(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(e2eKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "servers:\n  - address: 127.0.0.1:4949\n    key_file: " + key + "\n"
	parse := func(extra string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(base+extra), "tacagent.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := parse("")
	a := apiConfig(cfg, zerolog.Nop())
	if a.ConversationShare != localapi.DefaultConversationShare || a.ConnectionShare != localapi.DefaultConnectionShare ||
		a.RateLimit.BaseDelay != localapi.DefaultBaseDelay || a.RateLimit.MaxDelay != localapi.DefaultMaxDelay ||
		a.RateLimit.MaxKeys != localapi.DefaultRateLimitKeys || a.ConversationTimeout != localapi.DefaultConversationTimeout {
		t.Errorf("defaults: %+v", a)
	}
	s, err := settingsFrom(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.MetricsMaxConns != 64 || !slices.Equal(s.SecretCommands, daemon.DefaultSecretCommands) {
		t.Errorf("default settings: max conns %d, secret commands %v", s.MetricsMaxConns, s.SecretCommands)
	}

	cfg = parse(`api: {conversation_share: 3, connection_share: 2}
authentication:
  user_timeout: 45s
  failure_limit: {max: 4, window: 2m, base_delay: 7s, max_delay: 3m, max_keys: 500}
metrics: {max_connections: 9}
log: {secret_commands: [frob, Zap]}
`)
	a = apiConfig(cfg, zerolog.Nop())
	want := localapi.RateLimit{MaxFailures: 4, Window: 2 * time.Minute, BaseDelay: 7 * time.Second, MaxDelay: 3 * time.Minute, MaxKeys: 500}
	if a.ConversationShare != 3 || a.ConnectionShare != 2 || a.RateLimit != want || a.ConversationTimeout != 45*time.Second {
		t.Errorf("configured: %+v", a)
	}
	if s, err = settingsFrom(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if s.MetricsMaxConns != 9 || !slices.Equal(s.SecretCommands, []string{"frob", "Zap"}) || s.Agent.UserTimeout != 45*time.Second {
		t.Errorf("configured settings: max conns %d, secret commands %v, user timeout %v", s.MetricsMaxConns, s.SecretCommands, s.Agent.UserTimeout)
	}
	if s, err = settingsFrom(parse("log: {secret_commands: []}\n"), nil); err != nil {
		t.Fatal(err)
	}
	if s.SecretCommands == nil || len(s.SecretCommands) != 0 {
		t.Errorf("an empty list must withhold nothing (not fall back to the default): %#v", s.SecretCommands)
	}

	for _, bad := range []string{
		"api: {conversation_share: -1}\n", "api: {connection_share: 5000}\n", "metrics: {max_connections: -2}\n",
		"authentication: {failure_limit: {base_delay: 20m, max_delay: 10m}}\n", "authentication: {failure_limit: {max_keys: -1}}\n",
		"log: {secret_commands: [\"two words\"]}\n", "log: {secret_commands: [\"\"]}\n",
	} {
		if _, err := config.Parse([]byte(base+bad), "tacagent.yaml"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestDaemonUIDFlag: --daemon-uid takes numbers and user names, and refuses anything else.
func TestDaemonUIDFlag(t *testing.T) {
	var d daemonUIDs
	for _, v := range []string{"998", "root"} {
		if err := d.Set(v); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
	}
	if d.String() != "998,0" {
		t.Errorf("got %s, want 998,0", d.String())
	}
	for _, v := range []string{"no-such-user-xyz", "-1", "4294967296x"} {
		if err := d.Set(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestTACACSConfigMapping: listen.tacacs reaches the front end's settings with its key and limits.
func TestTACACSConfigMapping(t *testing.T) {
	dir := t.TempDir()
	key, local := filepath.Join(dir, "key"), filepath.Join(dir, "local.key")
	if err := os.WriteFile(key, []byte(e2eKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, []byte("local-key-for-the-front-end\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("servers:\n  - address: 127.0.0.1:4949\n    key_file: "+key+
		"\nlisten:\n  tacacs: {address: 127.0.0.1:4950, key_file: "+local+", max_clients: 7, idle_timeout: 9s}\n"), "tacagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := tacacsConfig(cfg)
	if string(p.Key) != "local-key-for-the-front-end" || p.MaxClients != 7 || p.IdleTimeout != 9*time.Second ||
		p.SessionShare != proxy.DefaultSessionShare || p.RequestTimeout != proxy.DefaultRequestTimeout {
		t.Errorf("%+v", p)
	}
}
