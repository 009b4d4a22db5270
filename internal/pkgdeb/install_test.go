package pkgdeb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInstallDemoPAMPurge installs the .deb named by $TACAGENT_DEB (make deb-test) on this host with dpkg,
// runs `tacagent demo` from the installed binary, logs in with pamtester through the installed PAM module
// against the installed daemon and the project's test server, upgrades over itself, removes and purges,
// and checks that every path the package touches is as it was before. It needs root and a host without
// tacagent installed; it leaves the host as it found it (it purges and deletes the group it caused in
// its cleanup, whatever happened).
func TestInstallDemoPAMPurge(t *testing.T) {
	deb := os.Getenv("TACAGENT_DEB")
	if deb == "" {
		t.Skip("TACAGENT_DEB names the .deb to test: make deb-test")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the package test as root")
		}
		t.Skip("installing a package needs root")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "pamtester", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "tacagent").Output(); err == nil && len(out) > 0 && string(out) != "not-installed" {
		t.Fatalf("tacagent is %s on this host: the test installs and purges its own, and will not touch that one", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	shipped, paths := packagePaths(t, deb)
	before := snapshot(t, paths)
	for _, p := range append(shipped, "/run/tacagent", "/var/lib/tacagent") {
		if s := before[p]; s != "" {
			t.Fatalf("%s exists on this host before the install (%s): the test will not overwrite it", p, s)
		}
	}
	// The NSS module (nss/, built by `make -C nss`) is packaged as soon as the tree has it.
	if _, err := os.Stat("../../nss/Makefile"); err == nil {
		ma, err := exec.Command("dpkg-architecture", "-qDEB_HOST_MULTIARCH").Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := "/usr/lib/" + strings.TrimSpace(string(ma)) + "/libnss_tacagent.so.2"; !slices.Contains(shipped, want) {
			t.Errorf("the tree has nss/ but the package has no %s", want)
		}
	}
	_, groupErr := exec.Command("getent", "group", "tacagent").Output()
	groupExisted := groupErr == nil
	t.Cleanup(func() {
		// Whatever happened above: no package, no group the package made.
		if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "tacagent").Output(); err == nil && string(out) != "not-installed" {
			if out, err := exec.Command("dpkg", "--purge", "tacagent").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
			}
		}
		if !groupExisted {
			_ = exec.Command("groupdel", "tacagent").Run()
		}
		// And what the test's daemon made, should a broken postrm have left it.
		for _, p := range []string{"/var/lib/tacagent", "/run/tacagent"} {
			if before[p] == "" {
				_ = os.RemoveAll(p)
			}
		}
	})

	dpkg(t, ctx, "-i", deb)
	installed := snapshot(t, paths)
	for _, p := range paths {
		if b := before[p]; b != "" && installed[p] != b {
			t.Errorf("the install changed %s, which was there before: %s -> %s", p, b, installed[p])
		}
	}
	for p, want := range map[string]string{
		"/usr/sbin/tacagent":                              "file 755 0 0",
		"/etc/tacagent/tacagent.yaml":                     "file 640 0 0",
		"/etc/tacagent":                                   "dir 755 0 0",
		"/usr/share/pam-configs/tacagent":                 "file 644 0 0",
		"/usr/share/man/man8/tacagent.8.gz":               "file 644 0 0",
		"/usr/share/man/man5/tacagent.yaml.5.gz":          "file 644 0 0",
		"/usr/share/man/man8/pam_tacagent.8.gz":           "file 644 0 0",
		"/usr/share/bash-completion/completions/tacagent": "file 644 0 0",
		"/usr/share/zsh/vendor-completions/_tacagent":     "file 644 0 0",
	} {
		if !strings.HasPrefix(installed[p], want) {
			t.Errorf("installed %s: %q, want %q", p, installed[p], want)
		}
	}
	if _, err := exec.Command("getent", "group", "tacagent").Output(); err != nil {
		t.Error("postinst made no group tacagent")
	}
	if out, err := exec.Command("man", "-w", "tacagent.yaml").CombinedOutput(); err == nil && !strings.Contains(string(out), "/usr/share/man/man5/tacagent.yaml.5.gz") {
		t.Errorf("man -w tacagent.yaml: %s", out) // man-db may be absent (then err): the file check above holds
	}

	// The installed binary: its version and the demo (a real round trip with tacquito in-process).
	if out, err := exec.CommandContext(ctx, "/usr/sbin/tacagent", "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "tacagent ") {
		t.Errorf("tacagent --version: %v\n%s", err, out)
	}
	demo := exec.CommandContext(ctx, "/usr/sbin/tacagent", "demo")
	if out, err := demo.CombinedOutput(); err != nil || strings.Contains(string(out), "UNEXPECTED") {
		t.Errorf("installed tacagent demo: %v\n%s", err, out)
	}

	pamLogin(t, ctx)
	// What purge must take away besides the package's files: the daemon's spool (made by the login's
	// daemon above) and deb-systemd-helper's enablement.
	state := snapshot(t, paths)
	for p, want := range map[string]string{
		"/var/lib/tacagent/spool.db":                                            "file 600 0 0",
		"/etc/systemd/system/multi-user.target.wants/tacagent.service":          "link /lib/systemd/system/tacagent.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/tacagent.service.dsh-also": "file ",
	} {
		if !strings.HasPrefix(state[p], want) {
			t.Errorf("installed and run: %s is %q, want %q", p, orAbsent(state[p]), want)
		}
	}

	// An upgrade over itself keeps an administrator's change to a conffile.
	const conf = "/etc/tacagent/tacagent.yaml"
	edited := appendLine(t, conf, "# edited by the administrator")
	dpkg(t, ctx, "-i", deb)
	if b, _ := os.ReadFile(conf); !bytes.Equal(b, edited) {
		t.Errorf("the upgrade replaced the administrator's %s", conf)
	}

	// remove keeps the conffiles; purge removes everything.
	dpkg(t, ctx, "-r", "tacagent")
	if _, err := os.Stat("/usr/sbin/tacagent"); err == nil {
		t.Error("remove left /usr/sbin/tacagent")
	}
	if _, err := os.Stat(conf); err != nil {
		t.Errorf("remove took the conffile %s: %v", conf, err)
	}
	dpkg(t, ctx, "--purge", "tacagent")
	after := snapshot(t, paths)
	for _, p := range paths {
		if after[p] != before[p] {
			t.Errorf("after purge %s is %q; before the install it was %q", p, orAbsent(after[p]), orAbsent(before[p]))
		}
	}
}

// pamLogin runs the installed daemon against the test server, and pamtester with a PAM service that
// names the module by its bare name (so libpam finds it in the multiarch directory where the package
// put it): the right password passes auth and account, a wrong one fails, and with the daemon stopped the
// module fails closed. Then the package's pam-auth-update profile, enabled for a moment: a service that
// includes Debian's common-auth logs alice in through the agent and refuses a wrong password.
func pamLogin(t *testing.T, ctx context.Context) {
	t.Helper()
	dir := t.TempDir()
	srvBin := filepath.Join(dir, "tacplus-testserver")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", srvBin, "../../cmd/tacplus-testserver").CombinedOutput(); err != nil {
		t.Fatalf("building the test server: %v\n%s", err, out)
	}
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("package-test-shared-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(users, []byte("users:\n  alice: {password: alice-pw}\nauthor_rules:\n  - {user: alice, command: \"\", permit: true}\nsingle_connect: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := exec.CommandContext(ctx, srvBin, "-config", users, "-key-file", key, "-single-connect")
	srv.Stderr = os.Stderr
	srvOut, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() })
	addr, err := bufio.NewReader(srvOut).ReadString('\n') // the readiness line: the bound address
	if err != nil {
		t.Fatalf("test server: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, srvOut) }()

	// The default socket, where the pam-auth-update profile's lines (no socket=) look. /run/tacagent was
	// absent (checked above), and is the unit's RuntimeDirectory: purge removes it.
	const socket = "/run/tacagent/tacagent.sock"
	if err := os.Mkdir(filepath.Dir(socket), 0o755); err != nil {
		t.Fatal(err)
	}
	// The spool at its default path: the daemon makes /var/lib/tacagent, and purge must take it away.
	cfg := filepath.Join(dir, "tacagent.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "servers:\n  - name: test\n    address: %s\n    key_file: %s\napi:\n  socket: %s\n  mode: \"0600\"\nmetrics:\n  address: \"\"\n",
		strings.TrimSpace(addr), key, socket), 0o600); err != nil {
		t.Fatal(err)
	}
	var dlog bytes.Buffer
	daemon := exec.CommandContext(ctx, "/usr/sbin/tacagent", "run", "--config", cfg)
	daemon.Stderr = &dlog
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the daemon has exited; waitErr is then set
	var waitErr error
	go func() { waitErr = daemon.Wait(); close(exited) }()
	stop := func() {
		_ = daemon.Process.Signal(syscall.SIGTERM)
		<-exited
	}
	t.Cleanup(stop)
	// Ready when the installed CLI gets a status through the socket.
	ready := false
	for tick := time.NewTicker(50 * time.Millisecond); !ready; {
		if exec.Command("/usr/sbin/tacagent", "--socket", socket, "status").Run() == nil {
			ready = true
			tick.Stop()
			continue
		}
		select {
		case <-exited:
			t.Fatalf("the installed daemon exited: %v\n%s", waitErr, dlog.String())
		case <-ctx.Done():
			t.Fatalf("the installed daemon did not answer on %s\n%s", socket, dlog.String())
		case <-tick.C:
		}
	}

	service := fmt.Sprintf("tacagent-debtest-%d", os.Getpid())
	pamFile := filepath.Join("/etc/pam.d", service)
	stack := fmt.Sprintf("auth required pam_tacagent.so socket=%s protocol=pap\naccount required pam_tacagent.so socket=%s\n", socket, socket)
	if err := os.WriteFile(pamFile, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(pamFile) })
	pamtester := func(password string) (string, error) {
		cmd := exec.CommandContext(ctx, "pamtester", "-v", service, "alice", "authenticate", "acct_mgmt")
		cmd.Stdin = strings.NewReader(password + "\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := pamtester("alice-pw"); err != nil || !strings.Contains(out, "successfully authenticated") || !strings.Contains(out, "account management done") {
		t.Errorf("pamtester with the right password: %v\n%s\ndaemon:\n%s", err, out, dlog.String())
	}
	if out, err := pamtester("wrong"); err == nil || !strings.Contains(out, "Authentication failure") {
		t.Errorf("pamtester with a wrong password: %v\n%s", err, out)
	}
	commonAuth(t, ctx, service)
	stop()
	if out, err := pamtester("alice-pw"); err == nil || !strings.Contains(out, "Authentication service cannot retrieve authentication info") {
		t.Errorf("pamtester with the daemon stopped: %v\n%s (want PAM_AUTHINFO_UNAVAIL)", err, out)
	}
}

// commonAuth enables the package's pam-auth-update profile, checks a login through common-auth, and
// disables it again (the purge's comparison then checks that the stacks are as they were; prerm would
// take it out too, and the test's cleanup purges whatever happens).
func commonAuth(t *testing.T, ctx context.Context, service string) {
	t.Helper()
	update := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "pam-auth-update", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pam-auth-update %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	update("--enable", "tacagent")
	defer update("--disable", "tacagent")
	for file, want := range map[string]bool{"common-auth": true, "common-session": true, "common-account": false, "common-session-noninteractive": false} {
		b, err := os.ReadFile("/etc/pam.d/" + file)
		if err != nil || strings.Contains(string(b), "pam_tacagent.so") != want {
			t.Fatalf("pam-auth-update --enable tacagent: pam_tacagent.so in %s is %v, want %v (%v)\n%s", file, !want, want, err, b)
		}
	}
	service += "-common"
	pamFile := filepath.Join("/etc/pam.d", service)
	if err := os.WriteFile(pamFile, []byte("@include common-auth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(pamFile)
	login := func(password string) (string, error) {
		// ASCII (the profile's default): the server prompts, pamtester answers from stdin.
		cmd := exec.CommandContext(ctx, "pamtester", "-v", service, "alice", "authenticate")
		cmd.Stdin = strings.NewReader(password + "\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := login("alice-pw"); err != nil || !strings.Contains(out, "successfully authenticated") {
		t.Errorf("common-auth with the profile, right password: %v\n%s", err, out)
	}
	if out, err := login("wrong"); err == nil || !strings.Contains(out, "Authentication failure") {
		t.Errorf("common-auth with the profile, wrong password: %v\n%s", err, out)
	}
}

// packagePaths are the files the package ships (shipped), and all the paths whose state the test compares
// before and after: those, their parent directories, and what its maintainer scripts and its daemon make
// or change.
func packagePaths(t *testing.T, deb string) (shipped, all []string) {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("tar", "-t")
	list.Stdin = bytes.NewReader(out)
	names, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, n := range strings.Split(string(names), "\n") {
		if n != "" && !strings.HasSuffix(n, "/") {
			shipped = append(shipped, strings.TrimPrefix(n, "."))
		}
		n = strings.TrimSuffix(strings.TrimPrefix(n, "."), "/")
		for ; n != "" && n != "/"; n = filepath.Dir(n) {
			set[n] = true
		}
	}
	for _, p := range []string{
		"/var/lib/tacagent", "/var/lib/tacagent/spool.db", "/run/tacagent",
		"/etc/systemd/system/multi-user.target.wants/tacagent.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/tacagent.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/tacagent.service",
		"/var/lib/systemd/deb-systemd-helper-masked/tacagent.service",
		"/etc/pam.d/common-auth", "/etc/pam.d/common-account", "/etc/pam.d/common-session",
		"/etc/pam.d/common-session-noninteractive", "/etc/pam.d/common-password",
		"/etc/nsswitch.conf", "/etc/bash.bashrc", // the package must not edit other packages' files
	} {
		set[p] = true
	}
	for p := range set {
		all = append(all, p)
	}
	sort.Strings(all)
	return shipped, all
}

// snapshot describes each path: "dir MODE UID GID", "file MODE UID GID SHA256", "link TARGET", or "" when
// it does not exist.
func snapshot(t *testing.T, paths []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			m[p] = ""
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[p] = "link " + target
		case fi.IsDir():
			m[p] = fmt.Sprintf("dir %o %d %d", fi.Mode().Perm(), st.Uid, st.Gid)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			m[p] = fmt.Sprintf("file %o %d %d %s", fi.Mode().Perm(), st.Uid, st.Gid, hex.EncodeToString(sum[:8]))
		}
	}
	return m
}

func dpkg(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "dpkg", append([]string{"--force-confold"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func appendLine(t *testing.T, path, line string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, line+"\n"...)
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	return b
}

func orAbsent(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}
