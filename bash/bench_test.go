package bash

import (
	"fmt"
	"os"
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
	d := startDaemon(t, b, srv.Addr(), "2s")
	for _, cmd := range []string{"/bin/true", ":"} {
		base := timeCommands(t, b, "", cmd)
		hooked := timeCommands(t, b, d.socket, cmd)
		bp50, bp99 := pct(base.each, 50), pct(base.each, 99)
		hp50, hp99 := pct(hooked.each, 50), pct(hooked.each, 99)
		added := hp99 - bp99
		t.Logf("%-9s without hook: total %v, p50 %v, p99 %v; with hook: total %v, p50 %v, p99 %v; "+
			"added p50 %v, added p99 %v, ratio %.2f", cmd, base.total.Round(time.Millisecond), bp50, bp99,
			hooked.total.Round(time.Millisecond), hp50, hp99, hp50-bp50, added, float64(hooked.total)/float64(base.total))
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
	if n := len(srv.Authorizations()); n < 2*(benchCommands+benchWarmup) {
		t.Errorf("the server saw %d authorizations, want at least %d", n, 2*(benchCommands+benchWarmup))
	}
}

type timing struct {
	each  []time.Duration
	total time.Duration
}

// timeCommands runs a bash script that times each of benchCommands runs of cmd with $EPOCHREALTIME. With a
// socket it first installs the hook as contrib/bash/tacagent.sh does; the window between the two
// timestamps then holds the command's trap (authorization and START) and the next one (its STOP).
func timeCommands(t testing.TB, b *built, socket, cmd string) timing {
	t.Helper()
	var s strings.Builder
	if socket != "" {
		fmt.Fprintf(&s, "enable -f %s tacagent_hook || exit 9\nshopt -s extdebug\nset -o functrace\n", b.hook)
		fmt.Fprintf(&s, "trap 'tacagent_hook -s %s -- \"$?\" \"${PIPESTATUS[@]}\"' DEBUG\n", socket)
	}
	fmt.Fprintf(&s, "for ((i = 0; i < %d; i++)); do %s; done\n", benchWarmup, cmd)
	fmt.Fprintf(&s, "d=()\nfor ((i = 0; i < %d; i++)); do\n\tt0=$EPOCHREALTIME\n\t%s\n\tt1=$EPOCHREALTIME\n\td+=(\"$t0 $t1\")\ndone\n", benchCommands, cmd)
	s.WriteString("printf '%s\\n' \"${d[@]}\"\n")
	path := filepath.Join(t.TempDir(), "bench.sh")
	if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runHost("bash", "--noprofile", "--norc", path)
	if err != nil {
		t.Fatalf("bench script: %v\n%s", err, out)
	}
	var tm timing
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
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
