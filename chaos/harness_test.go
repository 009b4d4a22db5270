package chaos

// Tests of the harness itself: an invariant checker that cannot fail proves nothing.

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReconcile(t *testing.T) {
	l := NewLedger()
	for _, op := range []Op{
		{TaskID: "acked", Class: ClassOK, Server: "p"},
		{TaskID: "lost", Class: ClassOK, Server: "p"},
		{TaskID: "failed-but-taken", Class: "timeout"},
		{TaskID: "failed", Class: "unreachable"},
		{TaskID: "twice", Class: ClassOK, Server: "s"},
		{TaskID: "elsewhere", Class: ClassOK, Server: "p"},
		{TaskID: "hung", Class: ClassHung},
		{Kind: "pap", Class: ClassOK}, // not accounting
	} {
		l.Record(op)
	}
	got := l.Reconcile(map[string][]string{
		"p": {"acked", "failed-but-taken", "stranger"},
		"s": {"twice", "twice", "elsewhere", "failed-but-taken"},
	})
	want := AcctReport{Sent: 7, Acked: 4, Failed: 2, Hung: 1, Lost: []string{"lost"}, Misrouted: []string{"elsewhere"},
		Duplicates: 3, DupRepeats: 1, DupFailed: 2, Unknown: 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Reconcile = %+v\nwant        %+v", got, want)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, c := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 1, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
	} {
		if got := Percentile(c.in, c.q); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.in, c.q, got, c.want)
		}
	}
}

func TestLedgerWindowAndCounts(t *testing.T) {
	l := NewLedger()
	t0 := time.Now()
	l.Record(Op{Frontend: "goapi", Kind: "pap", Start: t0, Latency: 5 * time.Millisecond, Class: ClassOK, Server: "p"})
	l.Record(Op{Frontend: "goapi", Kind: "pap", Start: t0.Add(time.Second), Latency: time.Millisecond, Class: "timeout"})
	l.Record(Op{Frontend: "localapi", Kind: "acct", Start: t0.Add(2 * time.Second), Latency: 3 * time.Millisecond, Class: ClassOK, Server: "s", TaskID: "x"})
	l.Record(Op{Frontend: "localapi", Kind: "acct", Start: t0.Add(3 * time.Second), Class: ClassHung, TaskID: "y"})
	w := l.Window(t0.Add(500*time.Millisecond), t0.Add(3*time.Second), "")
	if w.Total != 2 || w.NotOK != 1 || w.Hung != 0 || !w.FirstOK.Equal(t0.Add(2*time.Second+3*time.Millisecond)) {
		t.Errorf("window = %+v", w)
	}
	if w := l.Window(time.Time{}, time.Time{}, "localapi"); w.Total != 2 || w.Hung != 1 || len(w.Latencies) != 1 {
		t.Errorf("localapi window = %+v", w)
	}
	c := l.Counts()
	if c.Total(Key{Frontend: "goapi"}) != 2 || c.Total(Key{Class: ClassOK}) != 2 || c.Total(Key{Kind: "acct", Class: ClassHung}) != 1 {
		t.Errorf("counts = %v", c)
	}
	if got := FormatOutcomes(c.Classes(Key{})); got != "ok=2 hung=1 timeout=1" {
		t.Errorf("FormatOutcomes = %q", got)
	}
	if l.ServedBy("goapi", "p") != 1 || l.ServedBy("localapi", "p") != 0 {
		t.Errorf("ServedBy wrong")
	}
	s := l.Summarize("x", time.Second, 2, AcctReport{Lost: []string{"a"}, Duplicates: 4})
	if s.Sessions != 4 || s.Hung != 1 || s.Lost != 1 || s.Duplicates != 4 || s.Kills != 2 || s.Max != 5*time.Millisecond {
		t.Errorf("summary = %+v", s)
	}
	var b strings.Builder
	if err := WriteTable(&b, []Summary{s, s}); err != nil || !strings.Contains(b.String(), "total") {
		t.Errorf("table %q, %v", b.String(), err)
	}
}

func TestParseText(t *testing.T) {
	in := `# HELP x help
# TYPE x counter
tacagent_sessions_finished_total{kind="authen",outcome="ok",server="127.0.0.1:49"} 12
tacagent_sessions_finished_total{kind="acct",outcome="ok",server="127.0.0.1:49"} 3
weird{msg="a \"quoted\" \\ value",b="x"} 1.5e+00
go_goroutines 17
h_bucket{le="0.1"} 4
h_count 4
`
	s, err := ParseText(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Sum("tacagent_sessions_finished_total", map[string]string{"outcome": "ok"}); v != 15 {
		t.Errorf("sum = %v", v)
	}
	if v := s.Sum("tacagent_sessions_finished_total", map[string]string{"kind": "acct"}); v != 3 {
		t.Errorf("acct = %v", v)
	}
	if v := s.Sum("weird", map[string]string{"msg": `a "quoted" \ value`}); v != 1.5 {
		t.Errorf("escaped label: %v (%+v)", v, s)
	}
	if s.Sum("go_goroutines", nil) != 17 || s.Has("h_bucket") || !s.Has("h_count") {
		t.Errorf("samples %+v", s)
	}
	for _, bad := range []string{"x{a=\"b\" 1", "x{a=b} 1", "x", "x{a=\"b\"} notanumber"} {
		if _, err := ParseText(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseText(%q) accepted", bad)
		}
	}
}

// TestProcGroup: Kill ends the process and what it started; Stop returns the exit code of a process that
// handles SIGTERM; a process that exits before its readiness line is an error.
func TestProcGroup(t *testing.T) {
	dir := t.TempDir()
	p, line, err := StartProc(ProcConfig{Path: "/bin/sh", Args: []string{"-c", "sleep 60 & echo $!; wait"},
		LogPath: filepath.Join(dir, "log"), ReadyLine: true})
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("readiness line %q", line)
	}
	p.Kill()
	if err := poll(waitLimit, func() (bool, string) { return gone(child), "the shell's child is alive" }); err != nil {
		t.Fatal(err)
	}

	p, _, err = StartProc(ProcConfig{Path: "/bin/sh", Args: []string{"-c", `trap "exit 3" TERM; echo ready; while :; do sleep 0.05; done`},
		LogPath: filepath.Join(dir, "log"), ReadyLine: true})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Stop(waitLimit); err != nil || code != 3 {
		t.Fatalf("Stop = %d, %v; want 3", code, err)
	}

	if _, _, err := StartProc(ProcConfig{Path: "/bin/sh", Args: []string{"-c", "echo oops >&2; exit 4"},
		LogPath: filepath.Join(dir, "log"), ReadyLine: true}); err == nil {
		t.Fatal("a process that died before its readiness line was accepted")
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "log")); !strings.Contains(string(raw), "oops") {
		t.Errorf("stderr not in the log: %q", raw)
	}
}

// gone reports whether pid no longer runs (absent, or a zombie waiting for its reaper).
func gone(pid int) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// TestLinkToxics: data flows through a link; a blackhole swallows it; removing the blackhole closes the
// connection it held, and new connections flow again; limit_data cuts a connection after its bytes.
func TestLinkToxics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // an echo server
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	defer func() { ln.Close(); <-done }()
	n := NewNetwork()
	defer n.Close()
	l, err := n.Link("echo", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	echo := func(c net.Conn, msg string, wait time.Duration) (string, error) {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		return string(buf), err
	}
	c := dial()
	defer c.Close()
	if got, err := echo(c, "hello", waitLimit); err != nil || got != "hello" {
		t.Fatalf("echo through the link: %q %v", got, err)
	}
	if err := l.Add(Blackhole("downstream")); err != nil {
		t.Fatal(err)
	}
	if _, err := echo(c, "lost", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("through a blackhole: %v, want a read timeout", err)
	}
	if err := l.Remove("timeout_downstream"); err != nil {
		t.Fatal(err)
	}
	if got := l.Active(); len(got) != 0 {
		t.Fatalf("active toxics %v after the removal", got)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the blackholed connection was not closed cleanly: %v", err)
	}
	c2 := dial()
	defer c2.Close()
	if got, err := echo(c2, "again", waitLimit); err != nil || got != "again" {
		t.Fatalf("a new connection after the blackhole: %q %v", got, err)
	}
	if err := l.Add(LimitData("downstream", 3)); err != nil {
		t.Fatal(err)
	}
	if got, err := echo(c2, "cut here", waitLimit); err == nil || got[:3] != "cut" {
		t.Fatalf("limit_data: %q %v, want 3 bytes then the end", got, err)
	}
	if err := l.Add(Latency("upstream", 1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(Latency("upstream", 1, 0)); err == nil {
		t.Fatal("a second toxic of the same name was accepted")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestBlackholeVerdict checks the judge of TestBlackholedServer on made-up logins: it must fail a single
// login that waited on the dead server, a p99 above both bounds and too few samples, and pass noise under
// the floor.
func TestBlackholeVerdict(t *testing.T) {
	logins := func(n int, lat time.Duration, server string) []Brief {
		out := make([]Brief, n)
		for i := range out {
			out[i] = Brief{Frontend: "goapi", Kind: opPAP, Class: ClassOK, Server: server, Latency: lat}
		}
		return out
	}
	with := func(ops []Brief, extra ...Brief) []Brief { return append(append([]Brief(nil), ops...), extra...) }
	fast := logins(200, 20*time.Millisecond, "secondary")
	cases := []struct {
		name           string
		before, during []Brief
		wantErrs       int
	}{
		{"all fast", fast, fast, 0},
		// 3 % of the logins at 400 ms: p99 400 ms, 20× the p99 before, but under the floor: noise.
		{"noise under the floor", fast, with(fast, logins(6, 400*time.Millisecond, "secondary")...), 0},
		// One login in 200 that waited the dead server's timeout and failed over: the p99 does not see it.
		{"one login waited", fast, with(fast, Brief{Kind: opPAP, Class: ClassOK, Server: "secondary", Latency: serverTimeout + 5*time.Millisecond}), 1},
		{"one hung", fast, with(fast, Brief{Kind: opPAP, Class: ClassHung, Latency: reqDeadline + hungGrace}), 1},
		{"answered by the dead server", fast, with(fast, Brief{Kind: opPAP, Class: ClassOK, Server: "primary", Latency: time.Millisecond}), 1},
		// 5 % at 900 ms: p99 above the floor and above twice the p99 before.
		{"p99 above both bounds", fast, with(fast, logins(10, 900*time.Millisecond, "secondary")...), 1},
		// The same, with a slow "before" (500 ms, twice that is 1 s): within the ratio.
		{"p99 within twice before", with(fast, logins(10, 500*time.Millisecond, "primary")...), with(fast, logins(10, 900*time.Millisecond, "secondary")...), 0},
		{"too few", logins(10, time.Millisecond, "primary"), fast, 1},
	}
	for _, c := range cases {
		v := blackholeVerdict(c.before, c.during, "primary")
		if len(v.errs) != c.wantErrs {
			t.Errorf("%s: %d errors %q, want %d (p99 before %s, during %s)", c.name, len(v.errs), v.errs, c.wantErrs, v.before, v.during)
		}
	}
}
