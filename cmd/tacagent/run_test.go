package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/config"
	"github.com/tacagent/tacagent/daemon"
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
			"\nmetrics:\n  address: \"\"\nlog:\n  level: " + level + "\n"
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
}
