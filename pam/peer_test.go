package pam

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nobodyUID is the uid the fake agent drops to when it plays a socket served by someone who is not root.
const nobodyUID = 65534

// fakeAgent is a running src/fakeagent.c: it answers every request with one fixed JSON body and logs the
// bytes it received.
type fakeAgent struct {
	socket string
	log    string
}

// received returns what the fake agent has received so far.
func (f *fakeAgent) received(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// startFake runs the fake agent listening as uid, answering body, until the test ends.
func startFake(t *testing.T, b *built, uid int, body string) *fakeAgent {
	t.Helper()
	dir := t.TempDir()
	f := &fakeAgent{socket: filepath.Join(dir, "fake.sock"), log: filepath.Join(dir, "requests.log")}
	cmd := exec.Command(b.fake, f.socket, fmt.Sprint(uid), body, f.log)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() { // exits at the first line or when the process dies (the pipe closes)
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "READY" {
			t.Fatalf("the fake agent did not start: %q %s", line, stderr.String())
		}
	case <-time.After(daemonReady):
		t.Fatalf("the fake agent was not ready within %s: %s", daemonReady, stderr.String())
	}
	return f
}

// TestPeerCredentials (issue 13 point 6): before it sends anything, the module checks with SO_PEERCRED
// that the agent's socket is served by root or by daemon_uid=/daemon_user=. A socket served by another uid
// (here nobody, 65534: a hostile local user who took the socket's path) gets no byte -- no password, no
// accounting record -- and the call fails closed with PAM_SERVICE_ERR and a message that names the uid.
// The same fake agent, allowed by daemon_uid=65534 or daemon_user=nobody, is talked to: the refusal is the
// check, not a broken fake.
func TestPeerCredentials(t *testing.T) {
	b := requirePAM(t)
	f := startFake(t, b, nobodyUID, `{"result":"pass","user":"bob"}`)
	const opts = "protocol=pap acct_required"
	rootOnly := fullStack(t, b, f.socket, opts)
	otherUID := fullStack(t, b, f.socket, opts+" daemon_uid=1234")
	refusedRoot := fmt.Sprintf("served by uid %d, not root", nobodyUID)
	refusedOther := fmt.Sprintf("served by uid %d, not root or daemon uid 1234", nobodyUID)
	runCases(t, []pamCase{
		{name: "authenticate refused", svc: rootOnly, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate"}, code: 1,
			want: []string{refusedRoot, msgServiceErr}, deny: []string{msgAuthOK}},
		{name: "acct_mgmt refused", svc: rootOnly, user: "bob", ops: []string{"acct_mgmt"}, code: 1,
			want: []string{refusedRoot, msgServiceErr}, deny: []string{msgAcctOK}},
		{name: "session refused", svc: rootOnly, user: "bob", ops: []string{"open_session"}, code: 1,
			want: []string{refusedRoot, msgSessionErr}, deny: []string{msgOpened}},
		{name: "chauthtok refused", svc: rootOnly, user: "bob", stdin: "bob-pw-K3\nnew-pw-8Hq\nnew-pw-8Hq\n",
			ops: []string{"chauthtok"}, code: 1, want: []string{refusedRoot}, deny: []string{msgChanged}},
		{name: "another daemon_uid refused", svc: otherUID, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate"},
			code: 1, want: []string{refusedOther, msgServiceErr}, deny: []string{msgAuthOK}},
	}, nil)
	if got := f.received(t); got != "" {
		t.Fatalf("the socket served by uid %d received %d bytes from refused calls: %q", nobodyUID, len(got), got)
	}

	byUID := fullStack(t, b, f.socket, opts+fmt.Sprintf(" daemon_uid=%d", nobodyUID))
	byUser := fullStack(t, b, f.socket, opts+" daemon_user=nobody")
	runCases(t, []pamCase{
		{name: "daemon_uid allows", svc: byUID, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate", "acct_mgmt"},
			want: []string{msgAuthOK, msgAcctOK}},
		{name: "daemon_user allows", svc: byUser, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate"},
			want: []string{msgAuthOK}},
	}, nil)
	if got := f.received(t); !strings.Contains(got, "POST /v1/authenticate") || !strings.Contains(got, "POST /v1/authorize") {
		t.Fatalf("the allowed fake agent did not receive the requests: %q", got)
	}
}

// TestDaemonUserOptions: a daemon_uid= that is not a uid, or a daemon_user= that does not exist, is a
// configuration error (PAM_SERVICE_ERR) before anything is sent, never a fallback to root only.
func TestDaemonUserOptions(t *testing.T) {
	b := requirePAM(t)
	f := startFake(t, b, 0, `{"result":"pass","user":"bob"}`)
	auth := []string{"authenticate"}
	line := func(opt string) string {
		return service(t, b, moduleLine("auth", "required", f.socket, "protocol=pap "+opt))
	}
	runCases(t, []pamCase{
		{name: "daemon_uid not a number", svc: line("daemon_uid=tacagent"), user: "bob", stdin: "bob-pw-K3\n", ops: auth, code: 1,
			want: []string{"daemon_uid= must be a number", msgServiceErr}},
		{name: "daemon_uid negative", svc: line("daemon_uid=-1"), user: "bob", stdin: "bob-pw-K3\n", ops: auth, code: 1,
			want: []string{"daemon_uid= must be a number", msgServiceErr}},
		{name: "daemon_uid too large", svc: line("daemon_uid=4294967295"), user: "bob", stdin: "bob-pw-K3\n", ops: auth, code: 1,
			want: []string{"daemon_uid= must be a number", msgServiceErr}},
		{name: "daemon_user unknown", svc: line("daemon_user=no-such-user-q7z"), user: "bob", stdin: "bob-pw-K3\n", ops: auth, code: 1,
			want: []string{"daemon_user=: no such user", msgServiceErr}},
		{name: "root still allowed with daemon_uid", svc: line("daemon_uid=1234"), user: "bob", stdin: "bob-pw-K3\n", ops: auth,
			want: []string{msgAuthOK}},
	}, nil)
	if got := f.received(t); strings.Count(got, "POST /v1/authenticate") != 1 {
		t.Fatalf("want exactly one request (the valid option's), got %q", got)
	}
}

// TestAuthenticatedUser (issue 13 point 2): a pass counts only for the user PAM asked about. An agent that
// answers pass for another user, for the same name in another case, or without saying whom, fails the
// login (PAM_AUTH_ERR) with a log line; the control case, the right user, passes.
func TestAuthenticatedUser(t *testing.T) {
	b := requirePAM(t)
	auth := []string{"authenticate"}
	cases := []struct {
		name, body string
		ok         bool
		want       string
	}{
		{"same user", `{"result":"pass","user":"bob"}`, true, msgAuthOK},
		{"another user", `{"result":"pass","user":"mallory"}`, false, "the agent authenticated mallory, not PAM_USER bob"},
		{"another case", `{"result":"pass","user":"Bob"}`, false, "the agent authenticated Bob, not PAM_USER bob"},
		{"no user", `{"result":"pass"}`, false, "does not say which user it authenticated"},
		{"empty user", `{"result":"pass","user":""}`, false, "the agent authenticated (a name unfit to print), not PAM_USER bob"},
		{"user not a string", `{"result":"pass","user":["bob"]}`, false, "does not say which user it authenticated"},
		{"control characters", `{"result":"pass","user":"bob\u001b[2J"}`, false, "(a name unfit to print)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startFake(t, b, 0, c.body)
			for _, typ := range []string{"pap", "ascii"} {
				svc := service(t, b, moduleLine("auth", "required", f.socket, "protocol="+typ))
				pc := pamCase{name: typ, svc: svc, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{c.want}}
				if !c.ok {
					pc.code, pc.want, pc.deny = 1, append(pc.want, msgAuthFail), []string{msgAuthOK}
				}
				runCases(t, []pamCase{pc}, nil)
			}
		})
	}
}
