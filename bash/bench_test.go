package bash

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchCommands is how many commands each run times (the issue asks for 1,000), after benchWarmup.
const (
	benchCommands = 1000
	benchWarmup   = 50
	// benchCeiling fails the benchmark on a gross regression only: machines are shared, so the 2 ms goal
	// is measured on a quiet machine and written down in docs/perf.md, not asserted here.
	benchCeiling = 20 * time.Millisecond
)

// BenchmarkHookLatency runs benchCommands commands in real bash with and without the hook against a warm
// agent and reports the added latency per command (b.N is not used: one run is benchCommands commands).
// docs/perf.md ("bash") has the figures and this command:
//
//	go test ./bash -run '^$' -bench HookLatency -benchtime 1x -v
func BenchmarkHookLatency(bb *testing.B) {
	t := bb
	t.StopTimer()
	b := requireBash(t)
	srv := testServer(t)
	// The daemon as deployed (its durable spool on: every accounting record is fsynced before it is
	// acknowledged; the hook's default accounting_ack=durable, and delivered, the agent's default), and one with the spool off (records sent as the caller waits, nothing fsynced), to
	// show what the disk costs.
	d := startDaemonWith(t, b, srv.Addr(), "2s", "", fmt.Sprintf("accounting:\n  spool:\n    path: %s\n",
		filepath.Join(t.TempDir(), "spool.db")))
	nospool := startDaemonWith(t, b, srv.Addr(), "2s", "", "accounting:\n  spool:\n    enable: false\n")
	// BASH_BENCH_OTHER_HOOK names another build of tacagent_hook.so (an older version) timed in the same
	// run, against the same daemon, for a same-run comparison.
	other := os.Getenv("BASH_BENCH_OTHER_HOOK")
	for _, cmd := range []string{"/bin/true", ":"} {
		base := timeCommands(t, b.hook, nil, cmd)
		hooked := timeCommands(t, b.hook, d, cmd)
		bp50, bp99 := pct(base.each, 50), pct(base.each, 99)
		hp50, hp99 := pct(hooked.each, 50), pct(hooked.each, 99)
		added := hp99 - bp99
		t.Logf("%-9s without hook: total %v, p50 %v, p99 %v; with hook: total %v, p50 %v, p99 %v; "+
			"added p50 %v, added p99 %v, ratio %.2f; whole loop per command %v without, %v with", cmd, base.total.Round(time.Millisecond), bp50, bp99,
			hooked.total.Round(time.Millisecond), hp50, hp99, hp50-bp50, added, float64(hooked.total)/float64(base.total),
			base.loop/benchCommands, hooked.loop/benchCommands)
		t.Logf("%-9s CPU per command: bash %v without, %v with; daemon %v", cmd, base.cpu/(benchCommands+benchWarmup),
			hooked.cpu/(benchCommands+benchWarmup), hooked.daemonCPU/(benchCommands+benchWarmup))
		dl := timeCommands(t, b.hook, d, cmd, "-a", "delivered")
		dp50, dp99 := pct(dl.each, 50), pct(dl.each, 99)
		t.Logf("%-9s accounting_ack=delivered: p50 %v, p99 %v, added p50 %v, added p99 %v; whole loop per command %v; CPU per command: bash %v, daemon %v",
			cmd, dp50, dp99, dp50-bp50, dp99-bp99, dl.loop/benchCommands, dl.cpu/(benchCommands+benchWarmup),
			dl.daemonCPU/(benchCommands+benchWarmup))
		q := timeCommands(t, b.hook, d, cmd, "-a", "queued")
		qp50, qp99 := pct(q.each, 50), pct(q.each, 99)
		t.Logf("%-9s accounting_ack=queued: p50 %v, p99 %v, added p50 %v, added p99 %v; whole loop per command %v; CPU per command: bash %v, daemon %v",
			cmd, qp50, qp99, qp50-bp50, qp99-bp99, q.loop/benchCommands, q.cpu/(benchCommands+benchWarmup),
			q.daemonCPU/(benchCommands+benchWarmup))
		t.ReportMetric(float64(qp99-bp99)/float64(time.Millisecond), map[bool]string{true: "colon", false: "true"}[cmd == ":"]+"-queued-added-p99-ms")
		ns := timeCommands(t, b.hook, nospool, cmd)
		np50, np99 := pct(ns.each, 50), pct(ns.each, 99)
		t.Logf("%-9s spool off: p50 %v, p99 %v, added p50 %v, added p99 %v; whole loop per command %v; CPU per command: bash %v, daemon %v",
			cmd, np50, np99, np50-bp50, np99-bp99, ns.loop/benchCommands, ns.cpu/(benchCommands+benchWarmup),
			ns.daemonCPU/(benchCommands+benchWarmup))
		if other != "" {
			o := timeCommands(t, other, d, cmd)
			op50, op99 := pct(o.each, 50), pct(o.each, 99)
			t.Logf("%-9s other hook %s: p50 %v, p99 %v, added p50 %v, added p99 %v; whole loop per command %v; "+
				"this hook's added p99 / other's %.2f", cmd, other, op50, op99, op50-bp50, op99-bp99, o.loop/benchCommands,
				float64(added)/float64(op99-bp99))
			t.Logf("%-9s other hook CPU per command: bash %v, daemon %v", cmd, o.cpu/(benchCommands+benchWarmup), o.daemonCPU/(benchCommands+benchWarmup))
		}
		name := "colon"
		if cmd != ":" {
			name = "true"
		}
		t.ReportMetric(float64(added)/float64(time.Millisecond), name+"-added-p99-ms")
		t.ReportMetric(float64(hooked.total)/float64(base.total), name+"-ratio")
		if added > benchCeiling {
			t.Errorf("%s: the hook adds %v at p99, over the ceiling %v", cmd, added, benchCeiling)
		}
	}
	// Every timed command went to the server: authorization, START and STOP.
	if n := len(srv.Authorizations()); n < 8*(benchCommands+benchWarmup) {
		t.Errorf("the server saw %d authorizations, want at least %d", n, 8*(benchCommands+benchWarmup))
	}
}

type timing struct {
	each  []time.Duration
	total time.Duration
	loop  time.Duration // the whole timed loop: what the hook costs outside the windows counts here too
	// CPU time (user+system) of the bash run (with its children) and of the daemon during it: less noisy
	// than wall time on a shared machine.
	cpu, daemonCPU time.Duration
}

// procCPU is the user+system time of a live process, from /proc/PID/stat (clock ticks of 10 ms).
func procCPU(t testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// timeCommands runs a bash script that times each of benchCommands runs of cmd with $EPOCHREALTIME. With a
// socket it first installs the hook as contrib/bash/tacagent.sh does; the window between the two
// timestamps then holds the command's trap (authorization and START) and the next one (its STOP).
func timeCommands(t testing.TB, hook string, d *daemon, cmd string, opts ...string) timing {
	t.Helper()
	var s strings.Builder
	socket := ""
	if d != nil {
		socket = d.Socket
	}
	if socket != "" {
		fmt.Fprintf(&s, "enable -f %s tacagent_hook || exit 9\nshopt -s extdebug\nset -o functrace\n", hook)
		fmt.Fprintf(&s, "trap 'tacagent_hook -s %s %s -- \"$?\" \"${PIPESTATUS[@]}\"' DEBUG\n", socket, strings.Join(opts, " "))
	}
	fmt.Fprintf(&s, "for ((i = 0; i < %d; i++)); do %s; done\n", benchWarmup, cmd)
	fmt.Fprintf(&s, "d=()\nT0=$EPOCHREALTIME\nfor ((i = 0; i < %d; i++)); do\n\tt0=$EPOCHREALTIME\n\t%s\n\tt1=$EPOCHREALTIME\n\td+=(\"$t0 $t1\")\ndone\n", benchCommands, cmd)
	s.WriteString("T1=$EPOCHREALTIME\nprintf '%s\\n' \"${d[@]}\" \"$T0 $T1\"\n")
	path := filepath.Join(t.TempDir(), "bench.sh")
	if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var tm timing
	dpid := 0
	if d != nil {
		dpid = d.Cmd.Process.Pid
		tm.daemonCPU = -procCPU(t, dpid)
	}
	c := exec.Command("bash", "--noprofile", "--norc", path)
	ob, err := c.CombinedOutput()
	out := string(ob)
	if err != nil {
		t.Fatalf("bench script: %v\n%s", err, out)
	}
	tm.cpu = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	if dpid != 0 {
		tm.daemonCPU += procCPU(t, dpid)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("bench script printed %q:\n%s", line, out)
		}
		t0, e0 := strconv.ParseFloat(f[0], 64)
		t1, e1 := strconv.ParseFloat(f[1], 64)
		if e0 != nil || e1 != nil {
			t.Fatalf("bench script printed %q", line)
		}
		dd := time.Duration((t1 - t0) * float64(time.Second))
		if i == len(lines)-1 {
			tm.loop = dd
			break
		}
		tm.each = append(tm.each, dd)
		tm.total += dd
	}
	if len(tm.each) != benchCommands {
		t.Fatalf("got %d timings, want %d:\n%s", len(tm.each), benchCommands, out)
	}
	return tm
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i].Round(time.Microsecond)
}
