package audisp

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readLines returns the lines of a testdata file.
func readLines(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var realCaptures = []string{"real/enriched-exec-exit-abend.log", "real/enriched-args-pam.log", "real/raw-exec-exit.log"}

// TestParseRealCaptures: every line auditd really handed a plugin parses.
func TestParseRealCaptures(t *testing.T) {
	for _, name := range realCaptures {
		lines := readLines(t, name)
		if len(lines) < 50 {
			t.Fatalf("%s: only %d lines", name, len(lines))
		}
		for i, l := range lines {
			r, err := ParseLine(l)
			if err != nil {
				t.Fatalf("%s:%d: %v", name, i+1, err)
			}
			if r.Type == "" || r.ID.Serial == 0 {
				t.Fatalf("%s:%d: no type or serial: %+v", name, i+1, r)
			}
		}
	}
}

func TestParseFields(t *testing.T) {
	line := "type=SYSCALL msg=audit(1796504784.863:80): arch=c000003e syscall=59 success=yes exit=0 a0=55 items=2 ppid=1 pid=42 auid=1000 uid=0 tty=(none) ses=1 comm=\"sh\" exe=\"/usr/bin/dash\" key=\"tacagent_exec\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"alice\""
	r, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "SYSCALL" || r.ID != (EventID{Sec: 1796504784, Msec: 863, Serial: 80}) {
		t.Fatalf("header: %+v", r)
	}
	if s, _ := r.Str("exe"); s != "/usr/bin/dash" {
		t.Fatalf("exe = %q", s)
	}
	if v, _ := r.Hex("arch"); v != 0xc000003e {
		t.Fatalf("arch = %x", v)
	}
	if f, _ := r.GetEnriched("SYSCALL"); f.Value != "execve" {
		t.Fatalf("enriched SYSCALL = %q", f.Value)
	}
	if f, _ := r.GetEnriched("AUID"); f.Value != "alice" || !f.Quoted {
		t.Fatalf("enriched AUID = %+v", f)
	}
	if SyscallName(&r) != "execve" {
		t.Fatal("syscall name")
	}
	// The same record in the RAW format names the syscall by number.
	raw, _, _ := strings.Cut(line, "\x1d")
	r, err = ParseLine(raw)
	if err != nil || SyscallName(&r) != "execve" || len(r.Enriched) != 0 {
		t.Fatalf("raw: %v %q", err, SyscallName(&r))
	}
}

func TestParseUserRecordAndNode(t *testing.T) {
	line := "node=host1 type=USER_START msg=audit(1796504751.231:46): pid=18933 uid=0 auid=1001 ses=2 msg='op=PAM:session_open grantors=pam_env acct=\"nobody\" exe=\"/usr/bin/su\" hostname=? addr=? terminal=? res=success'\x1dUID=\"root\" AUID=\"unknown(1001)\""
	r, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if r.Node != "host1" || r.Type != "USER_START" {
		t.Fatalf("%+v", r)
	}
	for k, want := range map[string]string{"op": "PAM:session_open", "acct": "nobody", "res": "success", "auid": "1001"} {
		if f, ok := r.Get(k); !ok || f.Value != want {
			t.Errorf("%s = %+v, want %q", k, f, want)
		}
	}
}

// TestMalformedLines: every malformed line is an error with a counted reason, never a panic.
func TestMalformedLines(t *testing.T) {
	for _, c := range []struct{ line, reason string }{
		{"", ReasonEmpty},
		{"garbage", ReasonNoType},
		{"node=x", ReasonNoType},
		{"type=SYSCALL", ReasonNoType},
		{"type=SYSCALL audit(1.2:3):", ReasonNoMsg},
		{"type=SYSCALL msg=audit(1.2:3)", ReasonBadEventID},
		{"type=SYSCALL msg=audit(x.2:3):", ReasonBadEventID},
		{"type=SYSCALL msg=audit(1.2000:3):", ReasonBadEventID},
		{"type=SYSCALL msg=audit(1.2:-3):", ReasonBadEventID},
		{"type=SYSCALL msg=audit(1.2:3): a=\"open", ReasonUnterminated},
		{"type=USER msg=audit(1.2:3): msg='op=x", ReasonUnterminated},
		{"type=SOCKADDR msg=audit(1.2:3): x=1\x1dSADDR={ open", ReasonUnterminated},
		{"type=SYSCALL msg=audit(1.2:3): =1", ReasonBadField},
		{"type=X msg=audit(1.2:3): " + strings.Repeat("a", maxLine), ReasonTooLong},
	} {
		_, err := ParseLine(c.line)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Reason != c.reason {
			t.Errorf("%.40q: got %v, want reason %s", c.line, err, c.reason)
		}
	}
}

func TestDecodeString(t *testing.T) {
	for _, c := range []struct {
		f    Field
		want string
		ok   bool
	}{
		{Field{Value: "636166C3A9"}, "café", true},
		{Field{Value: "hello", Quoted: true}, "hello", true},
		{Field{Value: "(null)"}, "", true},
		{Field{Value: "xyz"}, "", false},
		{Field{Value: "abc"}, "", false}, // odd length
	} {
		got, ok := DecodeString(c.f)
		if got != c.want || ok != c.ok {
			t.Errorf("%+v: %q %v", c.f, got, ok)
		}
	}
}
