package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is one row of the summary table: a scenario (or a soak) and what its callers saw.
type Summary struct {
	Name       string
	Duration   time.Duration // wall time of the load
	Sessions   int           // requests made (each may have run several TACACS+ sessions)
	Kills      int           // servers SIGKILLed
	Outcomes   map[string]int
	P50, P99   time.Duration
	Max        time.Duration
	Hung       int
	Lost       int
	Duplicates int
	Wrong      int
}

// Summarize builds the row for the ledger's requests.
func (l *Ledger) Summarize(name string, d time.Duration, kills int, acct AcctReport) Summary {
	c := l.Counts()
	s := Summary{Name: name, Duration: d, Kills: kills, Outcomes: c.Classes(Key{}), Lost: len(acct.Lost),
		Duplicates: acct.Duplicates}
	s.Sessions = c.Total(Key{})
	s.Hung = s.Outcomes[ClassHung]
	s.Wrong = s.Outcomes[ClassWrong]
	lat := l.Latencies()
	s.P50, s.P99, s.Max = Percentile(lat, 0.50), Percentile(lat, 0.99), Percentile(lat, 1)
	return s
}

// Percentile returns the q-quantile (0 < q <= 1) of sorted latencies by the nearest-rank method; 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999) - 1 // ceil(q*n) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// FormatOutcomes writes outcome counts as "ok=120 timeout=3 ...": ok first, then by name.
func FormatOutcomes(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 && k != ClassOK {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	parts := []string{fmt.Sprintf("%s=%d", ClassOK, m[ClassOK])}
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// WriteTable writes rows as an aligned table, with a total row when there is more than one.
func WriteTable(w io.Writer, rows []Summary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tload\tsessions\tkills\toutcomes\tp50\tp99\tmax\thung\tlost\tdup\twrong")
	total := Summary{Name: "total", Outcomes: map[string]int{}}
	for _, r := range rows {
		writeRow(tw, r)
		total.Duration += r.Duration
		total.Sessions += r.Sessions
		total.Kills += r.Kills
		total.Hung += r.Hung
		total.Lost += r.Lost
		total.Duplicates += r.Duplicates
		total.Wrong += r.Wrong
		total.Max = max(total.Max, r.Max)
		for k, v := range r.Outcomes {
			total.Outcomes[k] += v
		}
	}
	if len(rows) > 1 {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t\t\t%s\t%d\t%d\t%d\t%d\n", total.Name, total.Duration.Round(time.Second),
			total.Sessions, total.Kills, FormatOutcomes(total.Outcomes), ms(total.Max), total.Hung, total.Lost,
			total.Duplicates, total.Wrong)
	}
	return tw.Flush()
}

func writeRow(w io.Writer, r Summary) {
	fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", r.Name, r.Duration.Round(100*time.Millisecond),
		r.Sessions, r.Kills, FormatOutcomes(r.Outcomes), ms(r.P50), ms(r.P99), ms(r.Max), r.Hung, r.Lost,
		r.Duplicates, r.Wrong)
}

// ms formats a latency in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
