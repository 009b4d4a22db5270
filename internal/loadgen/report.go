package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteText prints rep as a table for people.
func WriteText(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tacagent bench, %s", rep.Started.Format("2006-01-02 15:04:05 MST"))
	if rep.Build != "" {
		fmt.Fprintf(&b, ", %s", rep.Build)
	}
	fmt.Fprintf(&b, "\n%d CPUs (GOMAXPROCS %d), load average %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end\n",
		rep.CPUs, rep.GOMAXPROCS, rep.LoadAvgStart[0], rep.LoadAvgStart[1], rep.LoadAvgStart[2],
		rep.LoadAvgEnd[0], rep.LoadAvgEnd[1], rep.LoadAvgEnd[2])
	fmt.Fprintf(&b, "servers %s (%s); %d callers, ", strings.Join(rep.Servers, ", "), rep.ServersRun, rep.Callers)
	if rep.Count > 0 {
		fmt.Fprintf(&b, "%d logins per mode", rep.Count)
	} else {
		fmt.Fprintf(&b, "%gs per mode", rep.DurationS)
	}
	if rep.KillAtS > 0 {
		fmt.Fprintf(&b, ", first server killed %gs into each mode", rep.KillAtS)
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	hasTQ := rep.Result(ModeTacquito) != nil
	head := "mode\tlogins\tauths/s\tp50 µs\tp90 µs\tp99 µs\tmax µs\tCPU µs/auth\tconns/1000\t"
	if hasTQ {
		head += "×tacquito auths/s\t×tacquito CPU\t"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rep.Results {
		conns := "-"
		if r.ConnsPer1000 != nil {
			conns = fmt.Sprintf("%.1f", *r.ConnsPer1000)
		}
		line := fmt.Sprintf("%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%s\t", r.Mode, r.Requests, r.Throughput,
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.CPUPerAuthUS, conns)
		if hasTQ {
			line += fmt.Sprintf("%.2f\t%.2f\t", r.ThroughputVsTacquito, r.CPUVsTacquito)
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\n")
	for _, r := range rep.Results {
		if len(r.Errors) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
				parts = append(parts, fmt.Sprintf("%s %d", k, r.Errors[k]))
			}
			fmt.Fprintf(&b, "%s: %d failed: %s\n", r.Mode, r.Requests-r.OK, strings.Join(parts, ", "))
		}
		if r.DaemonPID != 0 {
			fmt.Fprintf(&b, "%s: the daemon (pid %d) used %.1f µs of CPU per login besides\n", r.Mode, r.DaemonPID, r.DaemonCPUPerAuthUS)
		}
		if r.WarmupError != "" {
			fmt.Fprintf(&b, "%s: warm-up login failed: %s\n", r.Mode, r.WarmupError)
		}
		for _, e := range r.Events {
			fmt.Fprintf(&b, "%s: at %.3fs: %s", r.Mode, e.AtS, e.Name)
			if e.Err != "" {
				fmt.Fprintf(&b, " (%s)", e.Err)
			}
			b.WriteString("\n")
		}
	}
	if rep.SingleVsPerSession > 0 {
		fmt.Fprintf(&b, "single-connect / per-session throughput: %.2f×\n", rep.SingleVsPerSession)
	}
	if f := rep.Fleet; f != nil {
		fmt.Fprintf(&b, "fleet of %d agents: %.2f server connections per 1,000 logins, against %.1f with one connection per request: ",
			f.Agents, f.ConnsPer1000, f.PerRequestConnsPer1000)
		if f.FewerX > 0 {
			fmt.Fprintf(&b, "%.0f× fewer\n", f.FewerX)
		} else {
			b.WriteString("no connection at all\n")
		}
	}
	b.WriteString("CPU is getrusage of this process (user+sys) per login: the bench's callers and the client under test")
	if strings.Contains(rep.ServersRun, "in this process") {
		b.WriteString(", and the embedded servers (--servers-in-process)")
	}
	b.WriteString("; local-api includes the daemon when it runs in this process.\n")
	_, err := io.WriteString(w, b.String())
	return err
}
