package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

const (
	testKey     = "cmd-test-key"
	testTimeout = 10 * time.Second
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testConfig = `
users:
  alice: {password: alice-pw, groups: [ops]}
  bob:
    password: bob-pw
    delay: 5ms
    prompts: [{message: "OTP code: ", answer: "123456", noecho: true}]
author_rules:
  - {user: alice, service: shell, command: "show .*", permit: true, args: [priv-lvl=15]}
  - {group: ops, command: ".*", permit: false, server_msg: denied}
single_connect: false
idle_timeout: 30s
`

// syncBuffer is a bytes.Buffer safe for the server's concurrent log lines.
type syncBuffer = testkit.SyncBuffer

// readLine returns the first line of r, or fails the test when none comes within testTimeout.
func readLine(t *testing.T, r io.Reader, exited <-chan int) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case l := <-line:
		return l
	case code := <-exited:
		t.Fatalf("exited with %d before the readiness line", code)
	case <-time.After(testTimeout):
		t.Fatal("no readiness line")
	}
	return ""
}

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func dial(t *testing.T, addr string) *tacplustest.Client {
	t.Helper()
	c, err := tacplustest.Dial(addr, []byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func exchange(t *testing.T, c *tacplustest.Client, h tacplus.Header, b tacplus.Body) tacplus.Body {
	t.Helper()
	if err := c.Send(h, b); err != nil {
		t.Fatal(err)
	}
	_, r, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func acct(flags tacplus.AcctFlag, task string) *tacplus.AcctRequest {
	return &tacplus.AcctRequest{Flags: flags, Method: tacplus.MethodTACACSPlus, PrivLvl: 1, Type: tacplus.AuthenTypeASCII,
		Service: tacplus.ServiceLogin, User: "alice", Port: "tty0", RemAddr: "127.0.0.1",
		Args: []string{"task_id=" + task, "service=shell"}}
}

func readRecords(t *testing.T, path string) []acctLine {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []acctLine
	for i, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if l == "" {
			continue
		}
		var r acctLine
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		out = append(out, r)
	}
	return out
}

// TestRun drives run in-process: readiness line, the config file's users and rules, the accounting log,
// and a clean exit on SIGTERM.
func TestRun(t *testing.T) {
	cfg := writeFile(t, "cfg.yaml", testConfig)
	acctLog := filepath.Join(t.TempDir(), "acct.jsonl")
	stdoutR, stdoutW := io.Pipe()
	var stderr syncBuffer
	sig := make(chan os.Signal, 1)
	exited := make(chan int, 1)
	go func() {
		exited <- run([]string{"-config", cfg, "-acct-log", acctLog, "-single-connect"},
			env(map[string]string{defaultKeyEnv: testKey}), stdoutW, &stderr, sig)
	}()
	addr := readLine(t, stdoutR, exited)
	c := dial(t, addr)

	pap := &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP,
		Service: tacplus.ServiceLogin, User: "alice", Data: "alice-pw"}
	h := tacplus.Header{SessionID: 1, SeqNo: 1, Flags: tacplus.FlagSingleConnect}
	if err := c.Send(h, pap); err != nil {
		t.Fatal(err)
	}
	rh, r, err := c.Recv()
	if err != nil || r.(*tacplus.AuthenReply).Status != tacplus.AuthenStatusPass || rh.Flags&tacplus.FlagSingleConnect == 0 {
		t.Fatalf("PAP: %v %v %v (the flag overrides single_connect: false)", rh, r, err)
	}
	// bob: password then the OTP prompt from the file.
	steps := []struct {
		b    tacplus.Body
		want tacplus.AuthenStatus
	}{
		{&tacplus.AuthenStart{Action: tacplus.ActionLogin, Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "bob"}, tacplus.AuthenStatusGetPass},
		{&tacplus.AuthenContinue{UserMsg: "bob-pw"}, tacplus.AuthenStatusGetData},
		{&tacplus.AuthenContinue{UserMsg: "123456"}, tacplus.AuthenStatusPass},
	}
	for i, st := range steps {
		if got := exchange(t, c, tacplus.Header{SessionID: 2, SeqNo: uint8(2*i + 1)}, st.b).(*tacplus.AuthenReply); got.Status != st.want {
			t.Fatalf("bob step %d: %v", i, got)
		}
	}
	author := func(cmd string) *tacplus.AuthorResponse {
		return exchange(t, c, tacplus.Header{SessionID: 3, SeqNo: 1}, &tacplus.AuthorRequest{Method: tacplus.MethodTACACSPlus,
			Service: tacplus.ServiceLogin, User: "alice", Args: []string{"service=shell", "cmd=" + cmd, "cmd-arg=x"}}).(*tacplus.AuthorResponse)
	}
	if r := author("show"); r.Status != tacplus.AuthorStatusPassAdd || len(r.Args) != 1 || r.Args[0] != "priv-lvl=15" {
		t.Errorf("show: %v", r)
	}
	if r := author("reload"); r.Status != tacplus.AuthorStatusFail || r.ServerMsg != "denied" {
		t.Errorf("reload: %v", r)
	}
	for i, f := range []tacplus.AcctFlag{tacplus.AcctFlagStart, tacplus.AcctFlagStop} {
		if r := exchange(t, c, tacplus.Header{SessionID: uint32(10 + i), SeqNo: 1}, acct(f, "77")).(*tacplus.AcctReply); r.Status != tacplus.AcctStatusSuccess {
			t.Fatalf("accounting: %v", r)
		}
	}

	sig <- syscall.SIGTERM
	if code := <-exited; code != exitOK {
		t.Fatalf("exit status %d, stderr %s", code, stderr.String())
	}
	recs := readRecords(t, acctLog)
	if len(recs) != 2 || recs[0].Flags != "START" || recs[1].Flags != "STOP" || recs[0].TaskID != "77" ||
		recs[1].SessionID != 11 || recs[1].Status != "SUCCESS" || recs[0].User != "alice" {
		t.Errorf("records %+v", recs)
	}
	if strings.Contains(stderr.String(), testKey) {
		t.Error("stderr shows the key")
	}
}

func TestRunErrors(t *testing.T) {
	keyFile := writeFile(t, "key", testKey+"\n")
	emptyKey := writeFile(t, "empty", "\n")
	badCfg := writeFile(t, "bad.yaml", "users: {alice: {passwrd: x}}\n")
	badRule := writeFile(t, "rule.yaml", "author_rules: [{command: \"(\"}]\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int
		msg  string
	}{
		{"no key", nil, nil, exitError, "no shared key"},
		{"empty key file", []string{"-key-file", emptyKey}, nil, exitError, "empty"},
		{"missing key file", []string{"-key-file", "/nonexistent/key"}, nil, exitError, "key file"},
		{"unknown config field", []string{"-config", badCfg, "-key-file", keyFile}, nil, exitError, "passwrd"},
		{"bad rule", []string{"-config", badRule, "-key-file", keyFile}, nil, exitError, "rule 0"},
		{"not loopback", []string{"-listen", "0.0.0.0:0"}, map[string]string{defaultKeyEnv: testKey}, exitError, "loopback"},
		{"bad flag", []string{"-no-such-flag"}, nil, exitUsage, "no-such-flag"},
	}
	for _, tt := range tests {
		var stdout, stderr syncBuffer
		code := run(tt.args, env(tt.env), &stdout, &stderr, make(chan os.Signal))
		if code != tt.want || !strings.Contains(stderr.String(), tt.msg) || stdout.String() != "" {
			t.Errorf("%s: status %d stderr %q stdout %q, want %d and %q", tt.name, code, stderr.String(), stdout.String(), tt.want, tt.msg)
		}
		if strings.Contains(stderr.String(), testKey) {
			t.Errorf("%s: stderr shows the key", tt.name)
		}
	}
}

// buildBinary builds this command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tacplus-testserver")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess starts the binary and returns it with its address once it printed the readiness line.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), defaultKeyEnv+"="+testKey)
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	addr := readLine(t, stdout, exited)
	return cmd, addr
}

// TestProcessKill runs the real binary, kills it with SIGKILL while accounting records are in flight, and
// checks that every record the client saw acknowledged is in the log. A second run ends with SIGTERM and
// exit status 0.
func TestProcessKill(t *testing.T) {
	bin := buildBinary(t)
	acctLog := filepath.Join(t.TempDir(), "acct.jsonl")
	cmd, addr := startProcess(t, bin, "-single-connect", "-acct-log", acctLog)
	c := dial(t, addr)

	const total, ackBeforeKill = 200, 120
	var batch []byte
	for i := range total {
		h := tacplus.Header{SessionID: uint32(i + 1), SeqNo: 1}
		if i == 0 {
			h.Flags = tacplus.FlagSingleConnect
		}
		var err error
		if batch, err = c.Codec().AppendPacket(batch, h, acct(tacplus.AcctFlagStop, fmt.Sprint(i+1))); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // negotiate single-connect before pipelining (section 4.3)
			if _, err := c.Conn().Write(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
			if _, r, err := c.Recv(); err != nil || r.(*tacplus.AcctReply).Status != tacplus.AcctStatusSuccess {
				t.Fatalf("first record: %v %v", r, err)
			}
		}
	}
	if _, err := c.Conn().Write(batch); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{"1": true}
	for len(acked) < ackBeforeKill {
		h, r, err := c.Recv()
		if err != nil || r.(*tacplus.AcctReply).Status != tacplus.AcctStatusSuccess {
			t.Fatalf("record %d: %v %v", h.SessionID, r, err)
		}
		acked[fmt.Sprint(h.SessionID)] = true
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("wait: %v", err)
	}
	logged := map[string]bool{}
	for _, r := range readRecords(t, acctLog) {
		logged[r.TaskID] = true
	}
	for task := range acked {
		if !logged[task] {
			t.Errorf("record %s was acknowledged but is not in the log", task)
		}
	}
	if len(logged) > total {
		t.Errorf("%d records logged, only %d sent", len(logged), total)
	}
	t.Logf("acknowledged %d, logged %d of %d at SIGKILL", len(acked), len(logged), total)

	cmd, addr = startProcess(t, bin, "-acct-log", acctLog)
	c = dial(t, addr)
	if r := exchange(t, c, tacplus.Header{SessionID: 999, SeqNo: 1}, acct(tacplus.AcctFlagStart, "after")).(*tacplus.AcctReply); r.Status != tacplus.AcctStatusSuccess {
		t.Fatalf("after restart: %v", r)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v, want exit status 0", err)
	}
	if recs := readRecords(t, acctLog); recs[len(recs)-1].TaskID != "after" {
		t.Errorf("the restarted server did not append: %+v", recs[len(recs)-1])
	}
}

// TestFaultFlags: the chaos suite switches faults on from the file (every fault field) or by flag, a flag
// overriding the file. The file asks for a seq_no that skips one on every reply; the flag replaces that
// with a reply under a session_id nobody has.
func TestFaultFlags(t *testing.T) {
	var fc fileConfig
	all := writeFile(t, "faults.yaml", `
faults: {user: alice, delay: 1ms, drop_replies: 1, close_mid_session: 2, truncate: 3, garbage: 4, error_replies: 5,
  wrong_key: 6, wrong_seq: 7, wrong_session: 8, cross_session: -1, close_after_reply: 9, prompt_forever: true, fail_delay: 1s}
`)
	if err := readConfig(all, &fc); err != nil {
		t.Fatal(err)
	}
	want := tacplustest.Faults{User: "alice", Delay: time.Millisecond, DropReplies: 1, CloseMidSession: 2, Truncate: 3,
		Garbage: 4, ErrorReplies: 5, WrongKey: 6, WrongSeq: 7, WrongSession: 8, CrossSession: tacplustest.Always,
		CloseAfterReply: 9, PromptForever: true, FailDelay: time.Second}
	if got := fc.config().Faults; !reflect.DeepEqual(got, want) {
		t.Errorf("faults from the file %+v, want %+v", got, want)
	}

	cfg := writeFile(t, "cfg.yaml", testConfig+"faults: {wrong_seq: -1}\n")
	stdoutR, stdoutW := io.Pipe()
	var stderr syncBuffer
	sig := make(chan os.Signal, 1)
	exited := make(chan int, 1)
	go func() {
		exited <- run([]string{"-config", cfg, "-fault-wrong-seq", "0", "-fault-wrong-session", "-1"},
			env(map[string]string{defaultKeyEnv: testKey}), stdoutW, &stderr, sig)
	}()
	c := dial(t, readLine(t, stdoutR, exited))
	pap := &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP,
		Service: tacplus.ServiceLogin, User: "alice", Data: "alice-pw"}
	if err := c.Send(tacplus.Header{SessionID: 1, SeqNo: 1}, pap); err != nil {
		t.Fatal(err)
	}
	rh, _, err := c.Recv()
	if err != nil || rh.SeqNo != 2 || rh.SessionID == 1 {
		t.Fatalf("reply %v %v: want seq_no 2 (the flag cleared wrong_seq) under another session_id", rh, err)
	}
	sig <- syscall.SIGTERM
	if code := <-exited; code != exitOK {
		t.Fatalf("exit status %d, stderr %s", code, stderr.String())
	}
}
