package pam

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// Messages pamtester prints (pam_strerror of Linux-PAM 1.5, and pamtester's own success lines).
const (
	msgAuthOK      = "pamtester: successfully authenticated"
	msgAuthFail    = "Authentication failure"
	msgUnavailable = "Authentication service cannot retrieve authentication info"
	msgPermDenied  = "Permission denied"
	msgAcctOK      = "pamtester: account management done."
	msgOpened      = "pamtester: successfully opened a session"
	msgClosed      = "pamtester: session has successfully been closed."
	msgSessionErr  = "Cannot make/remove an entry for the specified session"
	msgChanged     = "pamtester: authentication token altered successfully."
	msgTokenErr    = "Authentication token manipulation error"
	msgMaxTries    = "Have exhausted maximum number of retries for service"
	msgServiceErr  = "Error in service module"
)

// noLimit turns the local API's per-user failure limit off, so that failing cases do not lock users out
// of later cases.
const noLimit = "authentication:\n  failure_limit:\n    max: 0\n"

// moduleLine is one stack line for the module: TYPE CONTROL MODULE socket=... debug=stderr OPTIONS. The
// debug output goes to stderr, where the tests look for secrets.
func moduleLine(typ, control, socket, opts string) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s MODULE socket=%s debug=stderr %s", typ, control, socket, opts))
}

// fullStack is every PAM type through the module alone.
func fullStack(t *testing.T, b *built, socket, opts string) string {
	return service(t, b, moduleLine("auth", "required", socket, opts), moduleLine("account", "required", socket, opts),
		moduleLine("session", "required", socket, opts), moduleLine("password", "required", socket, opts))
}

type pamCase struct {
	name  string
	svc   string
	user  string
	stdin string
	items []string
	ops   []string
	code  int      // pamtester's exit status: 0 when every operation succeeded
	want  []string // lines the output must contain
	deny  []string // and must not
}

func runCases(t *testing.T, cases []pamCase, extraOutput func() string) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := pamtester(t, c.stdin, c.items, c.svc, c.user, c.ops...)
			if r.code != c.code {
				t.Fatalf("pamtester %s %v: want exit %d, got %s", c.user, c.ops, c.code, r)
			}
			for _, w := range c.want {
				if !strings.Contains(r.out, w) {
					t.Errorf("output lacks %q: %s", w, r)
				}
			}
			for _, w := range c.deny {
				if strings.Contains(r.out, w) {
					t.Errorf("output holds %q: %s", w, r)
				}
			}
			noSecrets(t, "pamtester's output and the module's debug output", r.out)
		})
	}
	if extraOutput != nil {
		noSecrets(t, "the daemon's log", extraOutput())
	}
}

// TestAuthenticate runs logins through pamtester against the daemon and the test server: ASCII with the
// server's prompts, PAP, CHAP and MS-CHAP, good and wrong passwords, an OTP second prompt, and the
// first-pass options behind pam_unix (which asks and sets PAM_AUTHTOK, also for users it does not know).
func TestAuthenticate(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), noLimit)
	ascii := fullStack(t, b, d.Socket, "")
	first := func(opt string) string {
		return service(t, b, "auth optional pam_unix.so nodelay", moduleLine("auth", "required", d.Socket, opt))
	}
	useFirst, tryFirst := first("use_first_pass"), first("try_first_pass")
	tryFirstAlone := service(t, b, moduleLine("auth", "required", d.Socket, "try_first_pass"))
	useFirstAlone := service(t, b, moduleLine("auth", "required", d.Socket, "use_first_pass"))
	proto := func(p string) string { return service(t, b, moduleLine("auth", "required", d.Socket, "protocol="+p)) }
	pap, chap, mschapv1, mschapv2 := proto("pap"), proto("chap"), proto("mschapv1"), proto("mschapv2")
	auth := []string{"authenticate"}
	runCases(t, []pamCase{
		{name: "ascii good password", svc: ascii, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{"Password: ", msgAuthOK}},
		{name: "ascii wrong password", svc: ascii, user: "bob", stdin: "wrong-pw-0x\n", ops: auth, code: 1, want: []string{msgAuthFail}},
		{name: "ascii unknown user", svc: ascii, user: "nobody-here", stdin: "wrong-pw-0x\n", ops: auth, code: 1, want: []string{msgAuthFail}},
		{name: "multi-prompt OTP", svc: ascii, user: "alice", stdin: "alice-pw-Q7\n246810\n", ops: auth,
			want: []string{"Password: ", "OTP code: ", msgAuthOK}},
		{name: "multi-prompt wrong OTP", svc: ascii, user: "alice", stdin: "alice-pw-Q7\n999999\n", ops: auth, code: 1,
			want: []string{"OTP code: ", msgAuthFail}},
		{name: "multi-prompt no answer", svc: ascii, user: "alice", stdin: "alice-pw-Q7\n", ops: auth, code: 1,
			want: []string{"OTP code: "}, deny: []string{msgAuthOK}},
		{name: "pap good", svc: pap, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{msgAuthOK}},
		{name: "pap wrong", svc: pap, user: "bob", stdin: "wrong-pw-0x\n", ops: auth, code: 1, want: []string{msgAuthFail}},
		{name: "chap good", svc: chap, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{msgAuthOK}},
		{name: "mschapv1 good", svc: mschapv1, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{msgAuthOK}},
		{name: "mschapv2 good", svc: mschapv2, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{msgAuthOK}},
		{name: "mschapv2 wrong", svc: mschapv2, user: "bob", stdin: "wrong-pw-0x\n", ops: auth, code: 1, want: []string{msgAuthFail}},
		// pam_unix asks "Password: " once; the module answers the server's password prompt with it and asks
		// only for the OTP.
		{name: "use_first_pass", svc: useFirst, user: "alice", stdin: "alice-pw-Q7\n246810\n", ops: auth,
			want: []string{"OTP code: ", msgAuthOK}},
		{name: "use_first_pass wrong", svc: useFirst, user: "bob", stdin: "wrong-pw-0x\n", ops: auth, code: 1, want: []string{msgAuthFail}},
		{name: "use_first_pass without a token", svc: useFirstAlone, user: "bob", stdin: "bob-pw-K3\n", ops: auth, code: 1,
			want: []string{"use_first_pass: no password", msgAuthFail}, deny: []string{"Password: "}},
		{name: "try_first_pass with a token", svc: tryFirst, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{msgAuthOK}},
		{name: "try_first_pass without a token asks", svc: tryFirstAlone, user: "bob", stdin: "bob-pw-K3\n", ops: auth,
			want: []string{"Password: ", msgAuthOK}},
		{name: "setcred", svc: ascii, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate", "setcred"}, want: []string{msgAuthOK}},
	}, d.Stderr.String)
}

// TestAccountAndSession checks acct_mgmt (authorization of service=shell, cmd= with the returned pairs in
// the PAM environment, shown by pam_exec running env) and open/close_session (START and STOP reaching the
// server's accounting sink with one task id, the tty and the remote host).
func TestAccountAndSession(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), noLimit)
	svc := service(t, b, moduleLine("account", "required", d.Socket, ""), moduleLine("session", "required", d.Socket, ""),
		"session optional pam_exec.so stdout /usr/bin/env")
	custom := service(t, b, moduleLine("account", "required", d.Socket, "service=ppp protocol=ip"))
	items := []string{"tty=pts/9", "rhost=127.0.0.9"}
	runCases(t, []pamCase{
		{name: "permit with attributes", svc: svc, user: "alice", items: items, ops: []string{"acct_mgmt", "open_session", "close_session"},
			want: []string{msgAcctOK, "TACACS_PRIV_LVL=15", "TACACS_ACL=ops team", msgOpened, msgClosed}},
		{name: "deny", svc: svc, user: "bob", ops: []string{"acct_mgmt"}, code: 1, want: []string{msgPermDenied}},
		{name: "other service is denied", svc: custom, user: "alice", ops: []string{"acct_mgmt"}, code: 1, want: []string{msgPermDenied}},
	}, d.Stderr.String)

	recs := srv.Accounting()
	if len(recs) != 2 {
		t.Fatalf("the accounting sink has %d records, want START and STOP: %+v", len(recs), recs)
	}
	start, stop := recs[0], recs[1]
	if start.Flags != tacplus.AcctFlagStart || stop.Flags != tacplus.AcctFlagStop {
		t.Fatalf("records are %s then %s, want START then STOP", start.Flags, stop.Flags)
	}
	for _, r := range recs {
		if r.User != "alice" || r.Port != "pts/9" || r.RemAddr != "127.0.0.9" || r.TaskID == "" || r.TaskID != start.TaskID {
			t.Errorf("record %+v: want user alice, port pts/9, rem_addr 127.0.0.9 and START's task_id %q", r, start.TaskID)
		}
		if !hasArg(r.Args, "service=shell") {
			t.Errorf("record %s lacks service=shell: %v", r.Flags, r.Args)
		}
	}
	for rec, prefixes := range map[int][]string{0: {"start_time="}, 1: {"stop_time=", "elapsed_time="}} {
		for _, p := range prefixes {
			if !hasArgPrefix(recs[rec].Args, p) {
				t.Errorf("record %s lacks %s: %v", recs[rec].Flags, p, recs[rec].Args)
			}
		}
	}
}

func hasArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

func hasArgPrefix(args []string, prefix string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}

// TestChauthtok changes a password with CHPASS through pamtester and checks it on the server and with
// the next logins; a mismatched retype or a wrong old password changes nothing.
func TestChauthtok(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), noLimit)
	svc := fullStack(t, b, d.Socket, "")
	passwd := []string{"chauthtok"}
	runCases(t, []pamCase{
		{name: "retype mismatch", svc: svc, user: "carol", stdin: "carol-pw-Z9\nnew-pw-8Hq\nnew-pw-8Hx\n", ops: passwd, code: 1,
			want: []string{"Sorry, passwords do not match.", msgTokenErr}},
		{name: "wrong old password", svc: svc, user: "carol", stdin: "wrong-pw-0x\nnew-pw-8Hq\nnew-pw-8Hq\n", ops: passwd, code: 1,
			want: []string{msgTokenErr}},
	}, nil)
	if pw, _ := srv.Password("carol"); pw != "carol-pw-Z9" {
		t.Fatal("a failed change changed the password")
	}
	runCases(t, []pamCase{
		{name: "change", svc: svc, user: "carol", stdin: "carol-pw-Z9\nnew-pw-8Hq\nnew-pw-8Hq\n", ops: passwd,
			want: []string{"Current password: ", "New password: ", "Retype new password: ", msgChanged}},
		{name: "new password works", svc: svc, user: "carol", stdin: "new-pw-8Hq\n", ops: []string{"authenticate"}, want: []string{msgAuthOK}},
		{name: "old password fails", svc: svc, user: "carol", stdin: "carol-pw-Z9\n", ops: []string{"authenticate"}, code: 1,
			want: []string{msgAuthFail}},
	}, d.Stderr.String)
	if pw, _ := srv.Password("carol"); pw != "new-pw-8Hq" {
		t.Fatal("the server's password did not change")
	}
}

// TestAgentUnavailable covers the agent stopped, a socket nobody listens on, a hanging agent and a
// daemon whose servers are all unreachable: the module returns PAM_AUTHINFO_UNAVAIL within its timeout,
// so a plain stack fails and a fallback stack goes on to the next module (pam_permit, or pam_deny to prove
// the next module really decided). Accounting failures do not block a session unless acct_required.
func TestAgentUnavailable(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	stopped := startDaemon(t, b, srv.Addr(), noLimit)
	// The agent answers once, then stops: the socket file goes away with it.
	svcBefore := service(t, b, moduleLine("auth", "required", stopped.Socket, ""))
	if r := pamtester(t, "bob-pw-K3\n", nil, svcBefore, "bob", "authenticate"); r.code != 0 {
		t.Fatalf("login before the agent stopped: %s", r)
	}
	stopped.Stop()

	unreachable := startDaemon(t, b, freePort(t), noLimit) // nothing listens on the server's port
	hanging := hangingAgent(t)
	timeout := fmt.Sprintf("timeout=%dms", moduleTimeout.Milliseconds())

	for _, agent := range []struct{ name, socket string }{
		{"agent stopped", stopped.Socket},
		{"no socket file", filepath.Join(t.TempDir(), "absent.sock")},
		{"agent hangs", hanging},
		{"servers unreachable", unreachable.Socket},
	} {
		t.Run(agent.name, func(t *testing.T) {
			line := func(typ, control string) string { return moduleLine(typ, control, agent.socket, timeout) }
			plain := service(t, b, line("auth", "required"), line("account", "required"), line("session", "required"),
				line("password", "required"))
			fallback := func(next string) string {
				return service(t, b, line("auth", "[success=done authinfo_unavail=ignore default=die]"), "auth required "+next,
					line("account", "[success=done authinfo_unavail=ignore default=die]"), "account required "+next)
			}
			permit, deny := fallback("pam_permit.so"), fallback("pam_deny.so")
			strict := service(t, b, line("session", "required")+" acct_required")
			cases := []pamCase{
				{name: "plain auth", svc: plain, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate"}, code: 1,
					want: []string{msgUnavailable}},
				{name: "plain account", svc: plain, user: "bob", ops: []string{"acct_mgmt"}, code: 1, want: []string{msgUnavailable}},
				{name: "fallback to pam_permit", svc: permit, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate", "acct_mgmt"},
					want: []string{msgAuthOK, msgAcctOK}},
				{name: "fallback to pam_deny", svc: deny, user: "bob", stdin: "bob-pw-K3\n", ops: []string{"authenticate"}, code: 1,
					want: []string{msgAuthFail}, deny: []string{msgAuthOK}},
				{name: "session goes on", svc: plain, user: "bob", ops: []string{"open_session", "close_session"},
					want: []string{msgOpened, msgClosed}},
				{name: "acct_required session fails", svc: strict, user: "bob", ops: []string{"open_session"}, code: 1,
					want: []string{msgSessionErr}},
				{name: "chauthtok", svc: plain, user: "bob", stdin: "bob-pw-K3\nnew-pw-8Hq\nnew-pw-8Hq\n", ops: []string{"chauthtok"}, code: 1,
					want: []string{msgUnavailable}, deny: []string{"Current password: "}},
			}
			if agent.name == "servers unreachable" {
				// The agent answers, and its accounting spool keeps the record (spooled: true): nothing is
				// lost, so acct_required lets the session open.
				for i := range cases {
					if cases[i].name == "acct_required session fails" {
						cases[i] = pamCase{name: "acct_required session opens with the record spooled", svc: strict, user: "bob",
							ops: []string{"open_session"}, want: []string{msgOpened}}
					}
				}
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					r := pamtester(t, c.stdin, nil, c.svc, c.user, c.ops...)
					if r.code != c.code {
						t.Fatalf("want exit %d, got %s", c.code, r)
					}
					for _, w := range c.want {
						if !strings.Contains(r.out, w) {
							t.Errorf("output lacks %q: %s", w, r)
						}
					}
					for _, w := range c.deny {
						if strings.Contains(r.out, w) {
							t.Errorf("output holds %q: %s", w, r)
						}
					}
					// Each operation waits at most one timeout (pamtester runs them in turn).
					if limit := time.Duration(len(c.ops))*moduleTimeout + returnSlack; r.took > limit {
						t.Errorf("took %s, more than %s: the module must give up within its timeout", r.took, limit)
					}
				})
			}
		})
	}
	if n := len(srv.Accounting()); n != 0 {
		t.Errorf("the server recorded %d accounting records from agents that could not reach it", n)
	}
}

// TestRateLimited: past the agent's per-user failure limit the module returns PAM_MAXTRIES, and a
// fallback stack does not fall through to the next module (maxtries is not authinfo_unavail).
func TestRateLimited(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), "authentication:\n  failure_limit:\n    max: 2\n    window: 1m\n")
	svc := service(t, b, moduleLine("auth", "[success=done authinfo_unavail=ignore default=die]", d.Socket, ""),
		"auth required pam_permit.so")
	auth := []string{"authenticate"}
	runCases(t, []pamCase{
		{name: "first failure", svc: svc, user: "dave", stdin: "wrong-pw-0x\n", ops: auth, code: 1, want: []string{msgAuthFail}},
		{name: "second failure", svc: svc, user: "dave", stdin: "wrong-pw-0x\n", ops: auth, code: 1, want: []string{msgAuthFail}},
		{name: "limited", svc: svc, user: "dave", stdin: "dave-pw-M1\n", ops: auth, code: 1, want: []string{msgMaxTries, "retry in"},
			deny: []string{"Password: "}},
		{name: "other users unaffected", svc: svc, user: "bob", stdin: "bob-pw-K3\n", ops: auth, want: []string{msgAuthOK}},
	}, d.Stderr.String)
}

// TestOptions: a bad value is PAM_SERVICE_ERR; an unknown option is ignored and logged by name only,
// never with its value (a pam_tacplus line carries secret=KEY).
func TestOptions(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), noLimit)
	auth := []string{"authenticate"}
	runCases(t, []pamCase{
		{name: "bad timeout", svc: service(t, b, moduleLine("auth", "required", d.Socket, "timeout=soon")), user: "bob",
			stdin: "bob-pw-K3\n", ops: auth, code: 1, want: []string{"timeout= takes seconds", msgServiceErr}},
		{name: "relative socket", svc: service(t, b, "auth required MODULE socket=tacagent.sock debug=stderr"), user: "bob",
			stdin: "bob-pw-K3\n", ops: auth, code: 1, want: []string{"socket= must be an absolute path", msgServiceErr}},
		{name: "pam_tacplus options ignored", user: "bob", stdin: "bob-pw-K3\n", ops: auth,
			svc:  service(t, b, moduleLine("auth", "required", d.Socket, "server=127.0.0.1 secret="+testKey+" timeout=5")),
			want: []string{"unknown option secret ignored", "unknown option server ignored", msgAuthOK}},
	}, d.Stderr.String)
}

// TestSSHDPlaceholderPassword: sshd answers with "\b\n\r\177INCORRECT" for users it does not know. The
// module must fail such a login without sending that password: with use_first_pass (pam_unix took it
// from sshd) and with PAP it never contacts the agent; asked at the server's password prompt, it aborts
// the session instead of answering it, so the server counts no failed login.
func TestSSHDPlaceholderPassword(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), noLimit)
	cases := []struct {
		name      string
		svc       string
		contacted bool
	}{
		{"use_first_pass", service(t, b, "auth optional pam_unix.so nodelay", moduleLine("auth", "required", d.Socket, "use_first_pass")), false},
		{"pap", service(t, b, moduleLine("auth", "required", d.Socket, "protocol=pap")), false},
		{"ascii prompt", service(t, b, moduleLine("auth", "required", d.Socket, "")), true},
	}
	// sshd repeats the placeholder's 13 bytes to the length of the password typed (auth-pam.c
	// fake_password): 1, 6, 13 and 40 bytes.
	for _, c := range cases {
		for _, fake := range []string{"@SSHD_FAKE@", "@SSHD_FAKE:1@", "@SSHD_FAKE:6@", "@SSHD_FAKE:40@"} {
			t.Run(c.name+"/"+fake, func(t *testing.T) { placeholderCase(t, b, d, srv, c.svc, c.contacted, fake) })
		}
	}
}

func placeholderCase(t *testing.T, b *built, d *daemon, srv *tacplustest.Server, svc string, contacted bool, fake string) {
	before, stats := d.apiRequests("authenticate"), srv.Stats()
	r := command(t, "", b.pamhost, "-n", svc, "bob", "authenticate", fake)
	if r.code != 1 || !strings.Contains(r.out, "RESULT authenticate 7 ") || !strings.Contains(r.out, "placeholder password") {
		t.Fatalf("want PAM_AUTH_ERR (7) and the placeholder noticed, got %s", r)
	}
	after := srv.Stats()
	if after.AuthenFail != stats.AuthenFail || after.AuthenPass != stats.AuthenPass {
		t.Errorf("the server saw a password: fails %d -> %d", stats.AuthenFail, after.AuthenFail)
	}
	if got := d.apiRequests("authenticate") - before; !contacted && got != 0 {
		t.Errorf("the agent got %d authenticate requests, want none", got)
	}
	if contacted {
		// The agent sends the ABORT after it answered the module: wait for it.
		eventually(t, 10*time.Second, "the server to see the session aborted", func() bool {
			return srv.Stats().Aborts == stats.Aborts+1
		})
	}
}

// TestForkingHost loads the module twice with dlopen and runs a whole PAM transaction in a forked child
// of the process that started it, as sshd does; the child must finish (an alarm kills a hang) with every
// operation successful and the attributes in its PAM environment. Then the module is unloaded.
func TestForkingHost(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), noLimit)
	svc := fullStack(t, b, d.Socket, "")
	for i := 0; i < 3; i++ {
		r := command(t, "", b.pamhost, "-m", b.module, "-a", "20", "-t", "pts/4", "-r", "127.0.0.4", svc, "alice",
			"authenticate,acct_mgmt,open_session,close_session", "alice-pw-Q7", "246810")
		for _, w := range []string{"LOADED twice", "RESULT authenticate 0 ", "RESULT acct_mgmt 0 ", "RESULT open_session 0 ",
			"RESULT close_session 0 ", "ENV TACACS_PRIV_LVL=15", "CHILD exit 0"} {
			if !strings.Contains(r.out, w) {
				t.Fatalf("run %d: output lacks %q: %s", i, w, r)
			}
		}
		if r.code != 0 {
			t.Fatalf("run %d: %s", i, r)
		}
		noSecrets(t, "pamhost's output", r.out)
	}
	if n := len(srv.Accounting()); n != 6 {
		t.Errorf("%d accounting records, want 6 (three sessions)", n)
	}
}

// TestCUnit runs the C unit test of the JSON reader/writer and the HTTP parser, under valgrind's
// memcheck too, so that an out-of-bounds read fails even where no assertion looks.
func TestCUnit(t *testing.T) {
	b := requirePAM(t)
	for _, argv := range [][]string{{b.unittest}, valgrind(b.unittest)} {
		r := command(t, "", argv[0], argv[1:]...)
		if r.code != 0 || !strings.Contains(r.out, " passed, 0 failed") {
			t.Fatalf("%v: %s", argv, r)
		}
	}
}

func valgrind(argv ...string) []string {
	return append([]string{"valgrind", "-q", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite"}, argv...)
}

// TestValgrind runs a full round trip (authenticate with two prompts, acct_mgmt, a session) through
// pamtester under memcheck: no invalid read or write, no use of uninitialised memory, no definite leak.
func TestValgrind(t *testing.T) {
	b := requirePAM(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), noLimit)
	svc := fullStack(t, b, d.Socket, "")
	for _, c := range []struct {
		user, stdin string
		code        int
	}{
		{"alice", "alice-pw-Q7\n246810\n", 0},
		{"alice", "wrong-pw-0x\n", 1},
	} {
		argv := valgrind("pamtester", "-v", "-I", "tty=pts/5", svc, c.user, "authenticate", "acct_mgmt", "open_session", "close_session")
		r := command(t, c.stdin, argv[0], argv[1:]...)
		if r.code != c.code || strings.Contains(r.out, "==") {
			t.Fatalf("%s under valgrind: want exit %d and no report, got %s", c.user, c.code, r)
		}
	}
	// And the forking host under valgrind, children traced.
	argv := append([]string{"valgrind", "-q", "--trace-children=yes", "--error-exitcode=99"}, b.pamhost, "-m", b.module, svc, "bob",
		"authenticate,acct_mgmt", "bob-pw-K3")
	r := command(t, "", argv[0], argv[1:]...)
	if r.code != 1 || !strings.Contains(r.out, "RESULT acct_mgmt 6 ") || strings.Contains(r.out, "==") {
		t.Fatalf("pamhost under valgrind: want bob authenticated and denied (exit 1), no report; got %s", r)
	}
}
