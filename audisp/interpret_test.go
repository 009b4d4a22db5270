package audisp

import (
	"strings"
	"testing"
)

func find(fs []Fact, kind FactKind, pred func(*Fact) bool) *Fact {
	for i := range fs {
		if fs[i].Kind == kind && pred(&fs[i]) {
			return &fs[i]
		}
	}
	return nil
}

func TestInterpretExecExitAbend(t *testing.T) {
	fs, bad := facts(t, readLines(t, "real/enriched-exec-exit-abend.log"))
	if len(bad) != 0 {
		t.Fatalf("malformed: %v", bad)
	}
	ls := find(fs, FactExec, func(f *Fact) bool { return f.Exe == "/usr/bin/ls" })
	if ls == nil || strings.Join(ls.Argv, " ") != "ls -l /tmp/auditcap" || ls.AUID != 1000 || ls.SES != 4 || ls.Cwd == "" || ls.Path != "/usr/bin/ls" {
		t.Fatalf("ls: %+v", ls)
	}
	exit3 := find(fs, FactExit, func(f *Fact) bool { return f.Status == 3 })
	if exit3 == nil {
		t.Fatal("sh -c 'exit 3' has an exit_group with status 3")
	}
	sh := find(fs, FactExec, func(f *Fact) bool { return f.PID == exit3.PID })
	if sh == nil || strings.Join(sh.Argv, "|") != "sh|-c|exit 3" {
		t.Fatalf("the hex-encoded argument: %+v", sh)
	}
	seg := find(fs, FactAbend, func(*Fact) bool { return true })
	if seg == nil || seg.Signal != 11 {
		t.Fatalf("ANOM_ABEND: %+v", seg)
	}
	login := find(fs, FactSessionStart, func(*Fact) bool { return true })
	if login == nil || login.AUID != 1000 {
		t.Fatalf("LOGIN: %+v", login)
	}
}

func TestInterpretArgs(t *testing.T) {
	fs, bad := facts(t, readLines(t, "real/enriched-args-pam.log"))
	if len(bad) != 0 {
		t.Fatalf("malformed: %v", bad)
	}
	echo := find(fs, FactExec, func(f *Fact) bool { return f.Exe == "/usr/bin/echo" })
	if echo == nil || len(echo.Argv) != 4 || echo.Argv[1] != "café" || echo.Argv[2] != `its "quoted"` || echo.Argv[3] != "tab\there" {
		t.Fatalf("hex-encoded arguments: %q", echo.Argv)
	}
	long := find(fs, FactExec, func(f *Fact) bool { return f.Argc == 3 && f.Exe == "/usr/bin/true" })
	if long == nil || long.Argv[1] != strings.Repeat("y", 9000) || long.Argv[2] != "short" {
		t.Fatalf("split argument (a1_len, a1[0], a1[1], ...): %+v", long)
	}
	many := find(fs, FactExec, func(f *Fact) bool { return f.Argc == 301 })
	if many == nil || len(many.Argv) != maxKeptArgs || many.Argv[255] != "255" {
		t.Fatalf("301 arguments: kept %d", len(many.Argv))
	}
	if find(fs, FactSessionStart, func(f *Fact) bool { return f.AUID == 1001 && f.SES == 2 }) == nil ||
		find(fs, FactSessionEnd, func(f *Fact) bool { return f.AUID == 1001 }) == nil {
		t.Fatalf("USER_START / USER_END missing (%d facts)", len(fs))
	}
	if find(fs, FactExit, func(f *Fact) bool { return f.Status == 1 }) == nil {
		t.Fatal("/bin/false exits 1")
	}
}

func TestInterpretRaw(t *testing.T) {
	fs, bad := facts(t, readLines(t, "real/raw-exec-exit.log"))
	if len(bad) != 0 {
		t.Fatalf("malformed: %v", bad)
	}
	if find(fs, FactExec, func(f *Fact) bool { return f.Argc == 1 && f.Argv[0] == "custom-argv0" && f.Exe == "/usr/bin/true" }) == nil {
		t.Fatal("exec -a: argv[0] is the caller's, exe is the kernel's")
	}
	for _, f := range fs {
		if f.Kind == FactExec && strings.Contains(f.Exe, "nonexistent") {
			t.Fatal("a failed execve is no command")
		}
	}
	if find(fs, FactExit, func(f *Fact) bool { return f.Status == 7 }) == nil {
		t.Fatal("the script's exit 7")
	}
}

func TestInterpretMalformedEvents(t *testing.T) {
	for _, c := range []struct {
		lines  []string
		reason string
	}{
		{[]string{"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=59 success=yes pid=x auid=1 ses=1"}, ReasonBadNumber},
		{[]string{"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=59 success=yes pid=1 auid=1 ses=1", "type=EXECVE msg=audit(1.0:1): argc=2 a0=\"x\""}, ReasonIncomplete},
		{[]string{"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=59 success=yes pid=1 auid=1 ses=1", "type=EXECVE msg=audit(1.0:1): argc=1 a0=zz"}, ReasonBadHex},
		{[]string{"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=59 success=yes pid=1 auid=1 ses=1", "type=EXECVE msg=audit(1.0:1): argc=1 a5=\"x\""}, ReasonBadArgs},
		{[]string{"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=59 success=yes pid=1 auid=1 ses=1", "type=EXECVE msg=audit(1.0:1): argc=1 a0_len=4 a0[1]=\"x\""}, ReasonBadArgs},
		{[]string{"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=231 pid=1 auid=1 ses=1 a0=zz"}, ReasonBadNumber},
		{[]string{"type=SYSCALL msg=audit(1.0:1): pid=1 auid=1 ses=1"}, ReasonNoSyscall},
		{[]string{"type=ANOM_ABEND msg=audit(1.0:1): pid=1 auid=1 ses=1 sig=x"}, ReasonBadNumber},
	} {
		_, bad := facts(t, c.lines)
		if bad[c.reason] != 1 {
			t.Errorf("%q: %v, want %s", c.lines, bad, c.reason)
		}
	}
}
