package bash

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPermitDenyAccounting: a permitted command runs, is authorized as its resolved path with one
// cmd-arg per argument, and is accounted START then STOP with its exit status; a denied one never runs,
// shows the server's message, and is not accounted. FAIL stops even for a member of the fallback group.
func TestPermitDenyAccounting(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), "2s")
	sh := hooked(t, b, hookConf{socket: d.Socket, group: "root"})
	touch := lookPath(t, "touch")

	a0, c0 := len(srv.Authorizations()), len(srv.Accounting())
	ok := filepath.Join(sh.dir, "ok")
	sh.run("touch " + ok)
	if !exists(ok) {
		t.Fatalf("the permitted touch did not run")
	}
	out := sh.run("touch " + filepath.Join(sh.dir, "denied"))
	if exists(filepath.Join(sh.dir, "denied")) {
		t.Fatal("the denied touch ran")
	}
	if !strings.Contains(out, msgDenied) {
		t.Errorf("the server's message is not shown; output:\n%s", out)
	}
	sh.run(lookPath(t, "false"))
	sh.exitShell()

	cs := authorized(t, srv, a0)
	for _, want := range []command{{touch, []string{ok}}, {touch, []string{filepath.Join(sh.dir, "denied")}}} {
		if !findCommand(cs, want) {
			t.Errorf("the server was not asked about %v; it got %v", want, cs)
		}
	}
	touchOK := func(r acct) bool { return r.Cmd.Cmd == touch && slices.Equal(r.Cmd.Args, []string{ok}) }
	falseStop := func(a acct) bool { return !a.Start && strings.HasSuffix(a.Cmd.Cmd, "/false") && a.Status == "1" }
	recs := accountedWhen(t, srv, c0, "the touch's START and STOP and false's STOP at the server", func(rs []acct) bool {
		return slices.ContainsFunc(rs, func(r acct) bool { return touchOK(r) && r.Start }) &&
			slices.ContainsFunc(rs, func(r acct) bool { return touchOK(r) && !r.Start }) && slices.ContainsFunc(rs, falseStop)
	})
	var start, stop *acct
	for i := range recs {
		if recs[i].Cmd.Cmd == touch && slices.Equal(recs[i].Cmd.Args, []string{ok}) {
			if recs[i].Start {
				start = &recs[i]
			} else {
				stop = &recs[i]
			}
		}
		if strings.Contains(strings.Join(recs[i].Cmd.Args, " "), "denied") {
			t.Errorf("a denied command was accounted: %+v", recs[i])
		}
	}
	if start == nil || stop == nil || start.Task != stop.Task || start.Task == "" || stop.Status != "0" {
		t.Fatalf("want START and STOP status=0 with one task_id for the touch; got %+v", recs)
	}
	// false's STOP is sent as bash exits, with its status.
	if !slices.ContainsFunc(recs, falseStop) {
		t.Errorf("no STOP with status=1 for false (sent at exit); records: %+v", recs)
	}
}

// TestArguments: spaces, quotes, globs (expanded by bash, one cmd-arg per file), unicode and
// backslashes (escaped as \xHH and \\: AV pairs are printable US-ASCII), and words with expansions that
// could run code, which go as typed.
func TestArguments(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), "2s")
	sh := hooked(t, b, hookConf{socket: d.Socket})
	for _, f := range []string{"a.txt", "b.txt", "c.log"} {
		if err := os.WriteFile(filepath.Join(sh.dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a0 := len(srv.Authorizations())
	out := sh.run(`echo "a b" 'say "hi"' it\'s *.txt ~ é 'back\slash' "$HOME" $(echo x) >/dev/null 2>&1`)
	sh.run(`printf '%s\n' {1,2}x`)
	// Parameters are read (no side effects): unquoted values that bash would split stay as typed.
	sh.run(`X=/bin/echo; Y="a b"; E=`)
	sh.run(`$X "$Y" $Y $E "$E" ${X}`)
	sh.run(`w() { "$@"; }`)
	sh.run(`w /bin/echo one "t w o"`)
	// A computed command name is refused.
	if out := sh.run("$(echo rm) -f " + filepath.Join(sh.dir, "a.txt")); !strings.Contains(out, "computed") ||
		!exists(filepath.Join(sh.dir, "a.txt")) {
		t.Errorf("a computed command name was not refused:\n%s", out)
	}
	cs := authorized(t, srv, a0)
	want := []command{
		{"echo", []string{"a b", `say "hi"`, "it's", "a.txt", "b.txt", sh.dir, `\xc3\xa9`, `back\\slash`, sh.dir, "$(echo x)"}},
		{"printf", []string{`%s\\n`, "1x", "2x"}},
		{"/bin/echo", []string{"a b", "$Y", "", "/bin/echo"}},
		{"w", []string{"/bin/echo", "one", "t w o"}},
		{"/bin/echo", []string{"one", "t w o"}},
	}
	for _, w := range want {
		if !findCommand(cs, w) {
			t.Errorf("the server was not asked about %v; it got %v (output %q)", w, cs, out)
		}
	}
	// The command substitution ran (after the hook) and was itself authorized.
	if !findCommand(cs, command{"echo", []string{"x"}}) {
		t.Errorf("the command substitution's echo was not authorized; got %v", cs)
	}
}

// TestShapes: pipelines, subshells, functions, aliases, command/builtin/exec prefixes and eval: each
// command is authorized as what bash runs, and a denied element never runs.
func TestShapes(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), "2s")
	sh := hooked(t, b, hookConf{socket: d.Socket})
	tr, cat, ls, id, rm, _ := lookPath(t, "tr"), lookPath(t, "cat"), lookPath(t, "ls"), lookPath(t, "id"),
		lookPath(t, "rm"), lookPath(t, "touch")
	victim := filepath.Join(sh.dir, "victim")
	if err := os.WriteFile(victim, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a0, c0 := len(srv.Authorizations()), len(srv.Accounting())
	if out := sh.run("echo x | tr x y | cat"); !strings.Contains(out, "y") {
		t.Errorf("the pipeline did not run; output %q", out)
	}
	sh.run("( id -u; echo sub )")
	sh.run("f() { ls -d /; }")
	sh.run("f")
	sh.run("alias ll='ls -d'")
	sh.run("ll /tmp")
	sh.run("command ls -d /usr")
	sh.run("builtin echo via-builtin")
	sh.run("eval 'rm " + victim + "'")
	sh.run("echo keep | rm " + victim)
	sh.run("command rm " + victim)
	sh.run("( rm " + victim + " )")
	sh.run("touch " + filepath.Join(sh.dir, "denied-in-subshell") + " | cat")
	if !exists(victim) {
		t.Fatal("a denied rm ran")
	}
	if exists(filepath.Join(sh.dir, "denied-in-subshell")) {
		t.Fatal("a denied pipeline element ran")
	}
	cs := authorized(t, srv, a0)
	for _, w := range []command{
		{"echo", []string{"x"}}, {tr, []string{"x", "y"}}, {cat, []string{}},
		{id, []string{"-u"}}, {"echo", []string{"sub"}},
		{"f", []string{}}, {ls, []string{"-d", "/"}},
		{ls, []string{"-d", "/tmp"}},
		{ls, []string{"-d", "/usr"}},
		{"echo", []string{"via-builtin"}},
		{"eval", []string{"rm " + victim}}, {rm, []string{victim}},
	} {
		if !findCommand(cs, w) {
			t.Errorf("the server was not asked about %v; it got %v", w, cs)
		}
	}
	// The pipeline's elements each have a START and a STOP with their own status.
	sh.run("true | false | true")
	sh.run(":")
	stopsOf := func(rs []acct) map[string]int {
		m := map[string]int{}
		for _, r := range rs {
			if !r.Start {
				m[r.Cmd.Cmd+" "+r.Status]++
			}
		}
		return m
	}
	recs := accountedWhen(t, srv, c0, "the pipeline's STOPs at the server", func(rs []acct) bool {
		m := stopsOf(rs)
		return m["false 1"] >= 1 && m["true 0"] >= 2 && m[tr+" 0"] >= 1 && m[id+" 0"] >= 1
	})
	// The server gets every STOP after its START (a START's answer is read before its STOP is sent).
	started := map[string]bool{}
	for _, r := range accounted(srv, 0) {
		if r.Start {
			started[r.Task] = true
		} else if !started[r.Task] {
			t.Errorf("a STOP before its START: %+v", r)
		}
	}
	stops := stopsOf(recs)
	if stops["false 1"] != 1 || stops["true 0"] < 2 || stops[tr+" 0"] != 1 || stops[id+" 0"] != 1 {
		t.Errorf("STOPs by command and status: %v", stops)
	}
}

// TestServerDown: no server answers. Commands are denied, unless the fallback group allows them; the
// server did receive the requests it did not answer.
func TestServerDown(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	if err := srv.SetFaults(tacplustestDropAll()); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, b, srv.Addr(), "500ms")
	deny := hooked(t, b, hookConf{socket: d.Socket})
	a0 := len(srv.Authorizations())
	f := filepath.Join(deny.dir, "f")
	out := deny.run("touch " + f)
	if exists(f) || !strings.Contains(out, "no TACACS+ server could be asked") {
		t.Fatalf("with every server silent a command ran or the reason is missing; output:\n%s", out)
	}
	if len(srv.Authorizations()) == a0 {
		t.Error("the server never received the request")
	}
	allow := hooked(t, b, hookConf{socket: d.Socket, group: "root"})
	g := filepath.Join(allow.dir, "g")
	out = allow.run("touch " + g)
	if !exists(g) || !strings.Contains(out, "allowed for group root") {
		t.Fatalf("the fallback group did not allow the command; output:\n%s", out)
	}
}

// TestAgentDown: nothing listens on the socket: denied by default, allowed for the fallback group; no
// server hears anything.
func TestAgentDown(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	gone := filepath.Join(t.TempDir(), "no-agent.sock")
	a0 := len(srv.Authorizations())
	deny := hooked(t, b, hookConf{socket: gone})
	f := filepath.Join(deny.dir, "f")
	if out := deny.run("touch " + f); exists(f) || !strings.Contains(out, "agent is not running") {
		t.Fatalf("with no agent a command ran or the reason is missing; output:\n%s", out)
	}
	allow := hooked(t, b, hookConf{socket: gone, group: "root"})
	g := filepath.Join(allow.dir, "g")
	if allow.run("touch " + g); !exists(g) {
		t.Fatal("the fallback group did not allow the command with no agent")
	}
	if n := len(srv.Authorizations()) - a0; n != 0 {
		t.Errorf("the server received %d authorizations with no agent in between", n)
	}
	// Logging out is never refused for want of an answer.
	deny.exitShell()

	// Settings others could write are ignored: no fallback group then.
	script := installScript(t, b, hookConf{socket: gone, group: "root"})
	if err := os.Chmod(filepath.Join(filepath.Dir(script), "bash.conf"), 0o664); err != nil {
		t.Fatal(err)
	}
	loose := startShell(t)
	if out := loose.run("source " + script); !strings.Contains(out, "writable by others: ignored") {
		t.Errorf("a group-writable settings file was not refused:\n%s", out)
	}
	h := filepath.Join(loose.dir, "h")
	if loose.run("touch " + h); exists(h) {
		t.Error("a group-writable settings file's fallback_group was applied")
	}
}

// TestKeptConnection: the builtin keeps its connection to the agent open between commands (the same
// socket at descriptor 150 across commands). When the daemon restarts between two commands, the next one
// is still authorized and accounted, on a new connection; while no daemon runs, commands are refused
// (fail closed), and a daemon back at the socket is used again.
func TestKeptConnection(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	sock := filepath.Join(t.TempDir(), "tacagent.sock")
	d := startDaemonAt(t, b, srv.Addr(), "2s", sock)
	sh := hooked(t, b, hookConf{socket: sock})
	kept := func() string {
		lines := strings.Split(strings.TrimSpace(sh.run("readlink /proc/$$/fd/150")), "\n")
		out := strings.TrimSpace(lines[len(lines)-1])
		if !strings.HasPrefix(out, "socket:[") {
			t.Fatalf("no socket at descriptor 150 of the shell: %q", out)
		}
		return out
	}
	first := kept()
	if again := kept(); again != first {
		t.Fatalf("the connection was not kept between commands: %s, then %s", first, again)
	}

	a0 := len(srv.Authorizations())
	d.Stop()
	d = startDaemonAt(t, b, srv.Addr(), "2s", sock)
	f := filepath.Join(sh.dir, "after-restart")
	if out := sh.run("touch " + f); !exists(f) {
		t.Fatalf("the first command after a daemon restart did not run:\n%s", out)
	}
	if after := kept(); after == first {
		t.Fatalf("still the old connection after the restart: %s", after)
	}
	if !findCommand(authorized(t, srv, a0), command{lookPath(t, "touch"), []string{f}}) {
		t.Fatal("the server was not asked about the command after the restart")
	}

	d.Stop()
	g := filepath.Join(sh.dir, "no-daemon")
	if out := sh.run("touch " + g); exists(g) || !strings.Contains(out, "agent is not running") {
		t.Fatalf("with the daemon gone a command ran, or the reason is missing:\n%s", out)
	}
	startDaemonAt(t, b, srv.Addr(), "2s", sock)
	h := filepath.Join(sh.dir, "back")
	if out := sh.run("touch " + h); !exists(h) {
		t.Fatalf("the daemon is back, the command did not run:\n%s", out)
	}
	c0 := len(srv.Accounting())
	sh.exitShell()
	// Every command that ran has its START and STOP: the ones whose STOP crossed a restart too.
	count := func(rs []acct, want string) (starts, stops int) {
		for _, r := range rs {
			if r.Cmd.Cmd == lookPath(t, "touch") && slices.Equal(r.Cmd.Args, []string{want}) {
				if r.Start {
					starts++
				} else {
					stops++
				}
			}
		}
		return starts, stops
	}
	recs := accountedWhen(t, srv, 0, "the STARTs and STOPs of both touches at the server", func(rs []acct) bool {
		for _, want := range []string{f, h} {
			if starts, stops := count(rs, want); starts < 1 || stops < 1 {
				return false
			}
		}
		return true
	})
	for _, want := range []string{f, h} {
		starts, stops := count(recs, want)
		if starts != 1 || stops != 1 {
			t.Errorf("touch %s: %d STARTs and %d STOPs, want one each (records after exit: %d)", want, starts, stops, len(recs)-c0)
		}
	}
}

// TestQueuedAck: with accounting_ack=queued the hook asks the agent to answer its records once they are
// queued in the spool: every command that ran still reaches the server with its START and then its STOP
// (status kept), a pipeline's too, and a denied command is neither run nor accounted.
func TestQueuedAck(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	d := startDaemonWith(t, b, srv.Addr(), "2s", "", fmt.Sprintf("accounting:\n  spool:\n    path: %s\n",
		filepath.Join(t.TempDir(), "spool.db")))
	sh := hooked(t, b, hookConf{socket: d.Socket, ack: "queued"})
	if got := sh.run("trap -p DEBUG"); !strings.Contains(got, "-a queued") {
		t.Fatalf("the hook does not ask for queued answers: %s", got)
	}
	c0 := len(srv.Accounting())
	f := filepath.Join(sh.dir, "q")
	sh.run("touch " + f)
	sh.run("true | false")
	out := sh.run("touch " + filepath.Join(sh.dir, "denied"))
	if exists(filepath.Join(sh.dir, "denied")) || !strings.Contains(out, msgDenied) {
		t.Fatalf("the denied touch ran, or no message:\n%s", out)
	}
	if !exists(f) {
		t.Fatal("the permitted touch did not run")
	}
	sh.exitShell()
	falseStop := func(a acct) bool { return !a.Start && strings.HasSuffix(a.Cmd.Cmd, "false") && a.Status == "1" }
	// The spool delivers the records of different commands in any order: wait for both STOPs.
	eventually(t, stepTimeout, "the touch's STOP and the pipeline false's STOP at the server", func() bool {
		recs := accounted(srv, c0)
		return slices.ContainsFunc(recs, falseStop) && slices.ContainsFunc(recs, func(r acct) bool {
			return !r.Start && slices.Equal(r.Cmd.Args, []string{f})
		})
	})
	recs := accounted(srv, c0)
	seen := map[string]bool{}
	for _, r := range accounted(srv, 0) { // the order check needs the STARTs from before c0 too
		if strings.Contains(strings.Join(r.Cmd.Args, " "), "denied") {
			t.Errorf("a denied command was accounted: %+v", r)
		}
		if r.Start {
			seen[r.Task] = true
		} else if !seen[r.Task] {
			t.Errorf("a STOP before its START: %+v", r)
		}
	}
	if !slices.ContainsFunc(recs, falseStop) {
		t.Errorf("no STOP status=1 for the pipeline's false: %+v", recs)
	}
}

// TestCUnits runs the C table test of the BASH_COMMAND split and the AV escaping.
func TestCUnits(t *testing.T) {
	b := requireBash(t)
	if out, err := runHost(b.words); err != nil {
		t.Fatalf("wordstest: %v\n%s", err, out)
	}
}

// TestTampering: what a user can type to remove the hook is refused, or undone with that command
// refused; afterwards a denied command is still denied.
func TestTampering(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), "2s")
	sh := hooked(t, b, hookConf{socket: d.Socket})
	victim := filepath.Join(sh.dir, "denied")
	steps := []struct{ line, want string }{
		{"trap - DEBUG", "DEBUG trap"},
		{"trap '' debug", "DEBUG trap"},
		{"eval 'trap - DEBUG'", "DEBUG trap"},
		{"builtin trap - DEBUG", "DEBUG trap"},
		{"enable -n tacagent_hook", "not allowed"},
		{"enable -d tacagent_hook", "not allowed"},
		{"tacagent_hook -g root", "DEBUG trap only"},
		{"unset -f __tacagent_cli; __tacagent_cli() { :; }", "readonly"},
	}
	for _, s := range steps {
		if out := sh.run(s.line); !strings.Contains(out, s.want) {
			t.Errorf("%q: want %q in the output, got:\n%s", s.line, s.want, out)
		}
	}
	// extdebug and functrace: the command after turning them off is refused, and they are back on.
	sh.run("shopt -u extdebug")
	if out := sh.run("touch " + filepath.Join(sh.dir, "after-extdebug")); !strings.Contains(out, "back on") {
		t.Errorf("no refusal after shopt -u extdebug:\n%s", out)
	}
	sh.run("set +o functrace")
	sh.run("g() { touch " + victim + "; }")
	sh.run("g")
	sh.run("touch " + victim)
	if exists(victim) {
		t.Fatal("a denied command ran after the tampering attempts")
	}
	if !strings.Contains(sh.run("trap -p DEBUG; shopt extdebug"), "trap -- 'tacagent_hook") {
		t.Error("the DEBUG trap is gone")
	}
	a := authorized(t, srv, 0)
	if !slices.ContainsFunc(a, func(c command) bool { return c.Cmd == lookPath(t, "touch") && slices.Equal(c.Args, []string{victim}) }) {
		t.Errorf("the final denied touch was not asked about: %v", a)
	}
}

// TestCLIFallback: without the builtin, the script asks `tacagent authorize` for each command.
func TestCLIFallback(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), "2s")
	script := installScript(t, b, hookConf{socket: d.Socket, builtin: filepath.Join(t.TempDir(), "missing.so")})
	sh := startShell(t)
	if out := sh.run("source " + script); !strings.Contains(out, "not available") {
		t.Errorf("no notice of the fallback:\n%s", out)
	}
	a0 := len(srv.Authorizations())
	ok, denied := filepath.Join(sh.dir, "ok"), filepath.Join(sh.dir, "denied")
	sh.run("touch " + ok + " 'é'")
	out := sh.run("touch " + denied)
	if !exists(ok) || exists(denied) {
		t.Fatalf("fallback: permitted ran %v, denied ran %v; output:\n%s", exists(ok), exists(denied), out)
	}
	if out := sh.run("trap - DEBUG"); !strings.Contains(out, "DEBUG trap") {
		t.Errorf("trap - DEBUG not refused in fallback mode:\n%s", out)
	}
	cs := authorized(t, srv, a0)
	touch := lookPath(t, "touch")
	// The fallback sends the typed words (quotes kept), escaped like the builtin.
	for _, w := range []command{{touch, []string{ok, `'\xc3\xa9'`}}, {touch, []string{denied}}} {
		if !findCommand(cs, w) {
			t.Errorf("the server was not asked about %v; it got %v", w, cs)
		}
	}
}

// TestSONiCPlugin: the plugin loaded and called as SONiC's bash does: a permitted exec runs, a denied one
// does not, and the server saw the resolved path and argv.
func TestSONiCPlugin(t *testing.T) {
	b := requireBash(t)
	srv := testServer(t)
	d := startDaemon(t, b, srv.Addr(), "2s")
	if err := os.WriteFile(b.pluginConf(), []byte("socket="+d.Socket+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	touch := lookPath(t, "touch")
	ok, denied := filepath.Join(dir, "ok file"), filepath.Join(dir, "denied")
	a0 := len(srv.Authorizations())
	if out, err := runHost(b.host, b.plugin, touch, "touch", ok); err != nil || !exists(ok) {
		t.Fatalf("permitted exec: %v, ran %v\n%s", err, exists(ok), out)
	}
	out, err := runHost(b.host, b.plugin, touch, "touch", denied)
	if err == nil || exists(denied) || !strings.Contains(out, msgDenied) {
		t.Fatalf("denied exec: %v, ran %v\n%s", err, exists(denied), out)
	}
	cs := authorized(t, srv, a0)
	for _, w := range []command{{touch, []string{ok}}, {touch, []string{denied}}} {
		if !findCommand(cs, w) {
			t.Errorf("the server was not asked about %v; it got %v", w, cs)
		}
	}
	// Agent down: denied, nothing sent.
	if err := os.WriteFile(b.pluginConf(), []byte("socket="+filepath.Join(dir, "none.sock")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if out, err := runHost(b.host, b.plugin, touch, "touch", other); err == nil || exists(other) {
		t.Fatalf("with no agent the exec ran\n%s", out)
	}
}
