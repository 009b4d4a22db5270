package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testKey     = "tacquito-wrapper-key-0123"
	testTimeout = 10 * time.Second
)

// start runs the wrapper with args and returns its address and a stop function that returns the exit code.
func start(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	outR, outW := io.Pipe()
	sig := make(chan os.Signal, 1)
	code := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		c := run(args, outW, &stderr, sig)
		outW.Close()
		code <- c
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(outR).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, outR)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			t.Fatalf("no readiness line; exit %d: %s", <-code, stderr.String())
		}
		return addr, func() int {
			sig <- os.Interrupt
			return <-code
		}
	case <-time.After(testTimeout):
		t.Fatal("no readiness line")
	}
	return "", nil
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServesAndLogsBeforeReplying: a login, an authorization and an accounting record through the agent;
// the record is in the log as soon as the agent has the acknowledgement.
func TestServesAndLogsBeforeReplying(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key", testKey+"\n")
	users := writeFile(t, dir, "users.json", `[{"name":"alice","password":"alice-pw","priv_lvl":15,"permit":["show"],"deny":["reload"]}]`)
	acct := filepath.Join(dir, "acct.jsonl")
	addr, stop := start(t, "-key-file", key, "-users", users, "-acct-log", acct)

	a, err := agent.New(agent.Config{Servers: []agent.Server{{Addr: addr, Key: []byte(testKey)}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := a.Authenticate(ctx, agent.AuthenRequest{User: "alice", Type: tacplus.AuthenTypePAP, Password: []byte("alice-pw")}, nil); err != nil {
		t.Errorf("PAP: %v", err)
	}
	if _, err := a.Authorize(ctx, agent.AuthorRequest{User: "alice", Method: tacplus.MethodTACACSPlus, Service: tacplus.ServiceLogin,
		Args: []string{"service=shell", "cmd=reload"}}); err == nil {
		t.Errorf("reload was permitted")
	}
	for i, id := range []string{"7", "8"} {
		if _, err := a.Account(ctx, agent.AcctRequest{Flags: tacplus.AcctFlagStart, User: "alice", Method: tacplus.MethodTACACSPlus,
			Service: tacplus.ServiceLogin, Args: []string{"task_id=" + id, "service=shell"}}); err != nil {
			t.Fatalf("accounting: %v", err)
		}
		raw, err := os.ReadFile(acct)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		var rec acctLine
		if len(lines) != i+1 || json.Unmarshal([]byte(lines[i]), &rec) != nil || rec.TaskID != id || rec.User != "alice" {
			t.Fatalf("after the acknowledgement of task %s the log holds %q", id, raw)
		}
	}
	a.Close(ctx)
	if c := stop(); c != exitOK {
		t.Fatalf("exit %d after the signal", c)
	}
	if raw, _ := os.ReadFile(acct); strings.Contains(string(raw), testKey) {
		t.Fatal("the key reached the accounting log")
	}
}

// TestRefusesBadSetups: each bad flag set exits 1 (or 2 for usage) without serving.
func TestRefusesBadSetups(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key", testKey)
	empty := writeFile(t, dir, "empty", "\n")
	badUsers := writeFile(t, dir, "users.json", `[{"name":"alice","colour":"blue"}]`)
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"no key", nil, exitError},
		{"empty key", []string{"-key-file", empty}, exitError},
		{"missing key file", []string{"-key-file", filepath.Join(dir, "none")}, exitError},
		{"not loopback", []string{"-key-file", key, "-listen", "0.0.0.0:0"}, exitError},
		{"unknown user field", []string{"-key-file", key, "-users", badUsers}, exitError},
		{"unknown flag", []string{"-colour"}, exitUsage},
	} {
		var stderr strings.Builder
		if got := run(c.args, io.Discard, &stderr, make(chan os.Signal)); got != c.code {
			t.Errorf("%s: exit %d (%s), want %d", c.name, got, stderr.String(), c.code)
		}
		if strings.Contains(stderr.String(), testKey) {
			t.Errorf("%s: the key is in the error output", c.name)
		}
	}
}

func TestTaskID(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"service=shell", "task_id=42"}, "42"},
		{[]string{"task_id*9"}, "9"},
		{[]string{"task=1", "task_ids=2"}, ""},
		{nil, ""},
	} {
		if got := taskID(c.args); got != c.want {
			t.Errorf("taskID(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}
