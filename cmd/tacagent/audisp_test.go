package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAudispCommand: with no agent, `tacagent audisp` reads its whole input, logs what it could not send
// and exits 0 when stdin ends; a bad configuration file is exit 78.
func TestAudispCommand(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("../../audisp/testdata/real/raw-exec-exit.log")
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { _, _ = w.Write(data); w.Close() }()
	var out, errb bytes.Buffer
	code := run([]string{"--socket", filepath.Join(dir, "none.sock"), "audisp", "--config", filepath.Join(dir, "missing.yaml")}, r, &out, &errb)
	if code != exitConfig || !strings.Contains(errb.String(), "audisp configuration") {
		t.Fatalf("a missing explicit configuration: %d %s", code, errb.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("secret_patterns: ['(']\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"audisp", "--config", bad}, r, &out, &errb); code != exitConfig {
		t.Fatalf("a bad pattern: %d %s", code, errb.String())
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("queue_size: 64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code = run([]string{"--socket", filepath.Join(dir, "none.sock"), "audisp", "--config", good}, r, &out, &errb)
	if code != exitOK || !strings.Contains(errb.String(), "audit plugin stopped") || !strings.Contains(errb.String(), `"lines":60`) {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
}
