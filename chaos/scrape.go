package chaos

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Sample is one series of a Prometheus scrape.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is a scrape. Histograms and summaries contribute their _count and _sum series.
type Samples []Sample

// Sum adds the values of the series called name whose labels include every pair of match.
func (s Samples) Sum(name string, match map[string]string) float64 {
	total := 0.0
	for _, x := range s {
		if x.Name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if x.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += x.Value
		}
	}
	return total
}

// Has reports whether a series called name exists.
func (s Samples) Has(name string) bool {
	for _, x := range s {
		if x.Name == name {
			return true
		}
	}
	return false
}

// GatherSamples reads a registry (an agent running in this process).
func GatherSamples(g prometheus.Gatherer) (Samples, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, err
	}
	var out Samples
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch {
			case m.Counter != nil:
				out = append(out, Sample{f.GetName(), labels, m.GetCounter().GetValue()})
			case m.Gauge != nil:
				out = append(out, Sample{f.GetName(), labels, m.GetGauge().GetValue()})
			case m.Histogram != nil:
				out = append(out, Sample{f.GetName() + "_count", labels, float64(m.GetHistogram().GetSampleCount())},
					Sample{f.GetName() + "_sum", labels, m.GetHistogram().GetSampleSum()})
			case m.Untyped != nil:
				out = append(out, Sample{f.GetName(), labels, m.GetUntyped().GetValue()})
			}
		}
	}
	return out, nil
}

// ParseText reads the Prometheus text format (a daemon's /metrics). Bucket series are skipped.
func ParseText(r io.Reader) (Samples, error) {
	var out Samples
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if strings.HasSuffix(s.Name, "_bucket") {
			continue
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLine parses `name{k="v",...} value [timestamp]`.
func parseLine(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("no value in %q", line)
	}
	s.Name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, ", ")
			if line == "" {
				return s, fmt.Errorf("unterminated labels")
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq <= 0 {
				return s, fmt.Errorf("bad label in %q", line)
			}
			name := line[:eq]
			line = line[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
					switch line[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(line[j])
					}
					continue
				}
				val.WriteByte(line[j])
			}
			if j == len(line) {
				return s, fmt.Errorf("unterminated label value")
			}
			s.Labels[name] = val.String()
			line = line[j+1:]
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.Value = v
	return s, nil
}
