package audisp

import (
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/localapi"
)

func defaultMasker(t *testing.T) *Masker {
	t.Helper()
	m, err := NewMasker(DefaultSecretPatterns, DefaultSecretFlags)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func av(r localapi.AcctRequest, name string) []string {
	var out []string
	for _, a := range r.AV {
		if v, ok := strings.CutPrefix(a, name); ok {
			out = append(out, v)
		}
	}
	return out
}

var alice = &localapi.AuditSession{AUID: 1000, SES: 4, User: "alice", TaskID: "77-1796504000123", Port: "ssh", RemAddr: "10.0.0.9"}

func TestTrackerStartStop(t *testing.T) {
	tr := NewTracker(TrackerConfig{BootID: "6113e20e", Masker: defaultMasker(t)})
	exec := Fact{Kind: FactExec, ID: EventID{Sec: 1796504784, Msec: 851, Serial: 78}, PID: 4242, AUID: 1000, SES: 4,
		Exe: "/usr/bin/mysql", Argv: []string{"mysql", "--password=hunter2", "-u", "admin", "--token", "hunter3", "https://bob:hunter4@example.com/x"}, Argc: 7}
	recs := tr.Exec(&exec, alice)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	st := recs[0]
	if st.Flags != localapi.FlagStart || st.User != "alice" || st.TaskID != "6113e20e-1796504784-78" || st.Port != "ssh" || st.RemAddr != "10.0.0.9" {
		t.Fatalf("start: %+v", st)
	}
	if got := strings.Join(av(st, "cmd-arg="), " "); got != "--password=*** -u admin --token *** https://bob:***@example.com/x" {
		t.Fatalf("masked args: %q", got)
	}
	if strings.Contains(strings.Join(st.AV, " "), "hunter") || tr.Masked != 3 {
		t.Fatalf("a secret leaked: %q (masked %d)", st.AV, tr.Masked)
	}
	if c := av(st, "cmd="); len(c) != 1 || c[0] != "/usr/bin/mysql" {
		t.Fatalf("cmd: %q", c)
	}
	if v := av(st, "session_task_id*"); len(v) != 1 || v[0] != alice.TaskID {
		t.Fatalf("session link: %q", v)
	}
	if v := av(st, "start_time="); len(v) != 1 || v[0] != "1796504784" {
		t.Fatalf("start_time: %q", v)
	}
	exit := Fact{Kind: FactExit, ID: EventID{Sec: 1796504787, Msec: 900, Serial: 90}, PID: 4242, AUID: 1000, SES: 4, Status: 3}
	sp, ok := tr.Exit(&exit)
	if !ok || sp.Flags != localapi.FlagStop || sp.TaskID != st.TaskID || sp.User != "alice" {
		t.Fatalf("stop: %+v", sp)
	}
	if v := av(sp, "status="); len(v) != 1 || v[0] != "3" {
		t.Fatalf("status: %q", sp.AV)
	}
	if v := av(sp, "elapsed_time="); len(v) != 1 || v[0] != "3" {
		t.Fatalf("elapsed: %q", sp.AV)
	}
	if _, ok := tr.Exit(&exit); ok || tr.Open() != 0 {
		t.Fatal("one STOP per command")
	}
	// A process that is not a TACACS+ session's: nothing.
	if recs := tr.Exec(&exec, nil); len(recs) != 0 {
		t.Fatalf("%+v", recs)
	}
}

func TestTrackerSignalExecChainAndReap(t *testing.T) {
	tr := NewTracker(TrackerConfig{BootID: "b"})
	f := Fact{Kind: FactExec, ID: EventID{Sec: 10, Serial: 1}, PID: 7, Exe: "/usr/bin/env", Argv: []string{"env", "X=1", "true"}, Argc: 3}
	tr.Exec(&f, alice)
	f2 := Fact{Kind: FactExec, ID: EventID{Sec: 11, Serial: 2}, PID: 7, Exe: "/usr/bin/true", Argv: []string{"true"}, Argc: 1}
	recs := tr.Exec(&f2, alice)
	if len(recs) != 2 || recs[0].Flags != localapi.FlagStop || recs[0].TaskID != "b-10-1" || recs[1].TaskID != "b-11-2" {
		t.Fatalf("exec over exec: %+v", recs)
	}
	ab := Fact{Kind: FactAbend, ID: EventID{Sec: 12, Serial: 3}, PID: 7, Signal: 11}
	sp, ok := tr.Exit(&ab)
	if !ok || av(sp, "status=")[0] != "-11" || !strings.Contains(av(sp, "err_msg=")[0], "SIGSEGV") {
		t.Fatalf("abend: %+v", sp)
	}
	f3 := Fact{Kind: FactExec, ID: EventID{Sec: 13, Serial: 4}, PID: 8, Exe: "/usr/bin/sleep", Argv: []string{"sleep", "9"}, Argc: 2}
	tr.Exec(&f3, alice)
	if got := tr.Reap(func(string, int) bool { return true }, time.Unix(20, 0)); len(got) != 0 {
		t.Fatal("a live process is not reaped")
	}
	got := tr.Reap(func(_ string, pid int) bool { return pid != 8 }, time.Unix(20, 0))
	if len(got) != 1 || len(av(got[0], "status=")) != 0 || av(got[0], "elapsed_time=")[0] != "7" {
		t.Fatalf("reap: %+v", got)
	}
}

// TestTrackerRFCLimits: every pair fits in 255 bytes, at most 255 pairs reach the server once the daemon
// added its own, non-ASCII bytes are escaped, and a 250-byte argument is not cut at 240.
func TestTrackerRFCLimits(t *testing.T) {
	tr := NewTracker(TrackerConfig{BootID: "b"})
	argv := []string{"cmd", strings.Repeat("a", 247), strings.Repeat("b", 248), "café\\\x01"}
	for i := 0; i < 400; i++ {
		argv = append(argv, "x")
	}
	f := Fact{Kind: FactExec, ID: EventID{Sec: 1, Serial: 1}, PID: 1, Exe: "/bin/cmd", Argv: argv[:maxKeptArgs], Argc: len(argv)}
	st := tr.Exec(&f, alice)[0]
	if len(st.AV)+daemonPairs+senderPairs > maxPairs {
		t.Fatalf("%d pairs", len(st.AV))
	}
	for _, a := range st.AV {
		if len(a) > maxPairLen {
			t.Fatalf("pair of %d bytes", len(a))
		}
		for i := 0; i < len(a); i++ {
			if a[i] < 0x20 || a[i] > 0x7e {
				t.Fatalf("non-printable byte in %q", a)
			}
		}
	}
	args := av(st, "cmd-arg=")
	if args[0] != strings.Repeat("a", 247) {
		t.Fatal("a 247-byte argument fits whole (255 with cmd-arg=)")
	}
	if args[1] != strings.Repeat("b", 247) {
		t.Fatal("a 248-byte argument is cut at 247")
	}
	if args[2] != `caf\xc3\xa9\\\x01` {
		t.Fatalf("escaping: %q", args[2])
	}
	omitted := av(st, "args_omitted*")
	if len(omitted) != 1 || omitted[0] != "159" || av(st, "args_truncated*")[0] != "1" {
		t.Fatalf("markers: omitted %q truncated %q (kept %d)", omitted, av(st, "args_truncated*"), len(args))
	}
	if len(args)+159 != len(argv)-1 {
		t.Fatalf("kept %d + omitted 159 != %d", len(args), len(argv)-1)
	}
}

func TestMaskerConfig(t *testing.T) {
	m, err := NewMasker([]string{`^secret$`}, []string{`^-p$`})
	if err != nil {
		t.Fatal(err)
	}
	out, n := m.Mask([]string{"x", "secret", "-p", "pw", "-p"})
	if n != 2 || strings.Join(out, " ") != "x *** -p *** -p" {
		t.Fatalf("%q %d", out, n)
	}
	if _, err := NewMasker([]string{"("}, nil); err == nil {
		t.Fatal("a bad pattern is an error")
	}
	fc, err := ParseConfig([]byte("secret_patterns: []\nqueue_size: 10\neoe_timeout: 1s\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := fc.Apply(&cfg); err != nil || cfg.QueueSize != 10 || cfg.EOETimeout != time.Second {
		t.Fatalf("%v %+v", err, cfg)
	}
	if out, _ := cfg.Masker.Mask([]string{"a", "--password=x"}); out[1] != "--password=x" {
		t.Fatal("an empty list masks nothing")
	}
	for _, bad := range []string{"nope: 1\n", "eoe_timeout: soon\n", "secret_flags: ['(']\n", "queue_size: -1\n"} {
		if _, err := ParseConfig([]byte(bad), "t.yaml"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if fc, err := LoadConfig("/nonexistent/audisp.yaml", false); err != nil || fc.SecretPatterns != nil {
		t.Fatalf("a missing default file gives the defaults: %v", err)
	}
	if _, err := LoadConfig("/nonexistent/audisp.yaml", true); err == nil {
		t.Fatal("a missing explicit file is an error")
	}
}
