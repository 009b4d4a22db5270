package nss

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// sshdBudget bounds TestSSHD as a whole (each wait below takes what is left of it).
const sshdBudget = 60 * time.Second

// The PAM service sshd uses in the namespace: the sshd recipe of docs/pam.md with pam_unix standing for
// Debian's common-* stacks.
const sshdPAM = `auth     [success=done authinfo_unavail=ignore default=die]  MODULE timeout=10
auth     required    pam_unix.so try_first_pass nodelay
account  [success=ok authinfo_unavail=ignore default=bad]    MODULE
account  required    pam_unix.so
session  optional    MODULE
session  required    pam_unix.so
password required    pam_deny.so
`

// sshd is a running /usr/sbin/sshd in the sandbox's namespace.
type sshd struct {
	addr    string
	hostKey ssh.PublicKey
	log     *syncBuffer
}

// startSSHD writes the sshd configuration, the PAM service, the host key and the bash hook's profile
// script into the sandbox, starts sshd -D in its namespace on a free loopback port and waits until it
// accepts connections.
func startSSHD(t *testing.T, b *built, s *sandbox, until time.Time) *sshd {
	t.Helper()
	write := func(rel, text string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(s.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	write("sshd/host_key", string(pem.EncodeToMemory(block)), 0o600)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	write("sshd/sshd_config", fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
UsePAM yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
AuthorizedKeysFile none
PermitRootLogin no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
LogLevel DEBUG1
`, port, filepath.Join(s.dir, "sshd/host_key"), filepath.Join(s.dir, "sshd/sshd.pid")), 0o600)
	write("etc/pam.d/sshd", strings.ReplaceAll(sshdPAM, "MODULE", b.pam), 0o644)
	s.mount("etc/pam.d", "/etc/pam.d")

	// The bash hook as docs/bash.md installs it, its files under /run/t in the namespace.
	copyFile(t, b.hook, filepath.Join(s.dir, "run/t/tacagent_hook.so"), 0o755)
	write("run/t/bash.conf", "socket=/run/tacagent/tacagent.sock\nbuiltin=/run/t/tacagent_hook.so\ntimeout_ms=5000\n", 0o644)
	script, err := os.ReadFile("../contrib/bash/tacagent.sh")
	if err != nil {
		t.Fatal(err)
	}
	const def = "local conf=/etc/tacagent/bash.conf"
	if !bytes.Contains(script, []byte(def)) {
		t.Fatalf("contrib/bash/tacagent.sh no longer says %q", def)
	}
	write("etc/profile.d/tacagent.sh", string(bytes.Replace(script, []byte(def), []byte("local conf=/run/t/bash.conf"), 1)), 0o644)
	s.mount("etc/profile.d", "/etc/profile.d")

	ctx, cancel := context.WithCancel(context.Background())
	cmd := s.command(ctx, "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(s.dir, "sshd/sshd_config"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d := &sshd{addr: addr, hostKey: signer.PublicKey(), log: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		cancel()
		if t.Failed() {
			t.Logf("sshd log:\n%s", d.log.String())
		}
	})
	eventually(t, time.Until(until), "sshd to listen", func() bool {
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", d.log.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return d
}

func (d *sshd) dial(user, password string) (*ssh.Client, error) {
	return ssh.Dial("tcp", d.addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.FixedHostKey(d.hostKey), Timeout: 10 * time.Second})
}

func author(srv *tacplustest.Server, user, cmd string) []tacplustest.AuthorRecord {
	var out []tacplustest.AuthorRecord
	for _, a := range srv.Authorizations() {
		if a.User == user && slices.Contains(a.Args, "cmd="+cmd) {
			out = append(out, a)
		}
	}
	return out
}

func acct(srv *tacplustest.Server, user string, flags tacplus.AcctFlag, has string) []tacplustest.AcctRecord {
	var out []tacplustest.AcctRecord
	for _, r := range srv.Accounting() {
		if r.User == user && r.Flags&flags != 0 && slices.Contains(r.Args, has) {
			out = append(out, r)
		}
	}
	return out
}

// TestSSHD: a user who exists only on the TACACS+ server logs in to a real sshd with a password, through
// libnss_tacagent (getpwnam) and pam_tacagent; the commands typed in the login shell are authorized and
// accounted through the bash hook, a denied one does not run; a wrong password is refused; an unknown
// user's password (sshd's placeholder) never reaches the server; the login is accounted (START and STOP);
// with the agent down a local user still logs in and the TACACS+ user does not.
func TestSSHD(t *testing.T) {
	b := require(t, "/usr/sbin/sshd", "openssl", "bash")
	until := time.Now().Add(sshdBudget)
	left := func() time.Duration { return max(time.Until(until), time.Second) }
	srv := testServer(t)
	s := newSandbox(t, b)
	d := startDaemon(t, b, s, srv.Addr())
	// sshd looks the user up once per connection, with the module's 50 ms: the first lookup of a name
	// starts an authorization that a loaded machine may not finish in time (docs/nss.md). getent settles
	// it first, so that the login below is not a race; the authorization is the same one.
	eventually(t, left(), "getent passwd alice", func() bool { return s.run(t, "getent", "passwd", "alice").code == 0 })
	sd := startSSHD(t, b, s, until)

	// A wrong password: refused, and the server saw exactly that one failure.
	before := srv.Stats()
	if c, err := sd.dial("alice", "not-alices-pw"); err == nil {
		c.Close()
		t.Fatal("a wrong password logged in")
	}
	if got := srv.Stats().AuthenFail - before.AuthenFail; got != 1 {
		t.Errorf("the server saw %d failed logins for one wrong password, want 1", got)
	}

	// An unknown user: NSS says no, sshd answers the password prompt with its placeholder, and the module
	// aborts instead of sending it (a 6-byte password: the placeholder is 6 bytes too).
	before = srv.Stats()
	if c, err := sd.dial("ghost", "secret"); err == nil {
		c.Close()
		t.Fatal("an unknown user logged in")
	}
	eventually(t, left(), "the NSS lookup of ghost at the server", func() bool { return len(author(srv, "ghost", "")) > 0 })
	after := srv.Stats()
	if after.AuthenFail != before.AuthenFail || after.AuthenPass != before.AuthenPass {
		t.Errorf("the server saw a password for ghost: fail %d -> %d, pass %d -> %d", before.AuthenFail,
			after.AuthenFail, before.AuthenPass, after.AuthenPass)
	}
	if !strings.Contains(sd.log.String(), "Invalid user ghost") {
		t.Errorf("sshd did not treat ghost as an invalid user:\n%s", sd.log.String())
	}

	// alice logs in and types commands in her login shell.
	before = srv.Stats()
	client, err := sd.dial("alice", "alice-pw-9")
	if err != nil {
		t.Fatalf("alice's login: %v", err)
	}
	defer client.Close()
	if got := srv.Stats().AuthenPass - before.AuthenPass; got != 1 {
		t.Errorf("%d passed authentications for alice's login, want 1", got)
	}
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	sess.Stdout, sess.Stderr = out, out
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 40, 200, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("alice's shell output:\n%s", out.String())
		}
	})
	// Markers are computed by the shell, so that the typed line (were it echoed) cannot match them.
	typeLine := func(line, want string) {
		t.Helper()
		if _, err := stdin.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		eventually(t, left(), fmt.Sprintf("%q in alice's shell output", want), func() bool { return strings.Contains(out.String(), want) })
	}
	typeLine("id -un; echo who-$((6*7))", "who-42")
	if !strings.Contains(out.String(), "tacacs15") {
		t.Errorf("id -un in alice's shell did not print the template's name:\n%s", out.String())
	}
	typeLine("rm -f /tmp/tacagent-nss-test-nothing; echo rm-$((6*7))", "rm-42")
	if !strings.Contains(out.String(), "rm is not allowed here") {
		t.Errorf("the denied rm's message is not shown:\n%s", out.String())
	}
	typeLine("exit", "") // the shell ends; the session closes
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case <-done:
	case <-time.After(left()):
		t.Fatalf("alice's shell did not exit:\n%s", out.String())
	}
	client.Close()

	// What the server received: the shell start (login), each command authorized as alice (LOGNAME, not
	// the template's name), the rm refused, the permitted command accounted START and STOP, and the login
	// session's START and then its STOP with the same task_id.
	if a := author(srv, "alice", "/usr/bin/id"); len(a) != 1 || a[0].Status == tacplus.AuthorStatusFail {
		t.Errorf("authorization of /usr/bin/id: %+v", a)
	}
	if a := author(srv, "alice", "/usr/bin/rm"); len(a) != 1 || a[0].Status != tacplus.AuthorStatusFail {
		t.Errorf("authorization of /usr/bin/rm: %+v", a)
	}
	if a := author(srv, "tacacs15", "/usr/bin/id"); len(a) != 0 {
		t.Errorf("a command was authorized as the template account: %+v", a)
	}
	// The hook's records are answered once the agent's spool holds them (durable) and reach the server
	// after: wait for them before counting.
	eventually(t, left(), "the START and STOP of /usr/bin/id at the server", func() bool {
		return len(acct(srv, "alice", tacplus.AcctFlagStart, "cmd=/usr/bin/id")) > 0 && len(acct(srv, "alice", tacplus.AcctFlagStop, "cmd=/usr/bin/id")) > 0
	})
	if st, sp := acct(srv, "alice", tacplus.AcctFlagStart, "cmd=/usr/bin/id"), acct(srv, "alice", tacplus.AcctFlagStop, "cmd=/usr/bin/id"); len(st) != 1 || len(sp) != 1 {
		t.Errorf("accounting of /usr/bin/id: %d STARTs, %d STOPs", len(st), len(sp))
	}
	if n := len(acct(srv, "alice", tacplus.AcctFlagStart, "cmd=/usr/bin/rm")); n != 0 {
		t.Errorf("the denied rm was accounted (%d STARTs)", n)
	}
	var login tacplustest.AcctRecord
	eventually(t, left(), "the login session's STOP", func() bool {
		starts := acct(srv, "alice", tacplus.AcctFlagStart, "service=shell")
		for _, st := range starts {
			if slices.ContainsFunc(st.Args, func(a string) bool { return strings.HasPrefix(a, "start_time=") }) {
				login = st
			}
		}
		if login.TaskID == "" {
			return false
		}
		for _, sp := range acct(srv, "alice", tacplus.AcctFlagStop, "service=shell") {
			if sp.TaskID == login.TaskID {
				return true
			}
		}
		return false
	})

	// The agent goes down: a local user still logs in (files, then pam_unix), alice no longer can.
	d.Stop()
	lc, err := sd.dial(localUser, localPass)
	if err != nil {
		t.Fatalf("the local user's login with the agent down: %v", err)
	}
	ls, err := lc.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ls.Output("echo local-$((6*7))")
	lc.Close()
	if err != nil || strings.TrimSpace(string(got)) != "local-42" {
		t.Errorf("the local user's command: %q %v", got, err)
	}
	if c, err := sd.dial("alice", "alice-pw-9"); err == nil {
		c.Close()
		t.Error("alice logged in with the agent down")
	}
	if time.Now().After(until) {
		t.Errorf("TestSSHD took longer than %s", sshdBudget)
	}
}
