package loadgen

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot geometry.
const (
	plotBuckets     = 100 // time buckets per mode
	minBucket       = 10 * time.Millisecond
	maxFailureMarks = 2000 // failed logins drawn per mode (evenly sampled beyond)
	floorMS         = 0.001
)

var (
	colP50     = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colP99     = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	colMax     = color.RGBA{R: 150, G: 150, B: 150, A: 255}
	colFailure = color.RGBA{R: 214, G: 39, B: 40, A: 255}
)

// WritePNG draws latency over time, one panel per mode of rep: p50, p99 and the maximum of the logins
// that passed in each time bucket, every failed login as a red cross at its start and latency, and every
// failure event (a killed server) as a vertical line.
func WritePNG(w io.Writer, rep *Report) error {
	if len(rep.Results) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	rows := make([][]*plot.Plot, len(rep.Results))
	for i, res := range rep.Results {
		p, err := modePlot(res)
		if err != nil {
			return fmt.Errorf("%s: %w", res.Mode, err)
		}
		rows[i] = []*plot.Plot{p}
	}
	img := vgimg.NewWith(vgimg.UseWH(10*vg.Inch, vg.Length(len(rows))*2.6*vg.Inch), vgimg.UseDPI(96))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func ms(d time.Duration) float64 { return math.Max(float64(d)/1e6, floorMS) }

// modePlot is one mode's panel.
func modePlot(res *Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d callers, %.0f auths/s, p99 %.2f ms, %d failed",
		res.Mode, res.Callers, res.Throughput, res.Latency.P99/1e3, res.Requests-res.OK)
	p.X.Label.Text = "time since the mode started (s)"
	p.Y.Label.Text = "latency (ms, log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())

	bucket := max(res.elapsed/plotBuckets, minBucket)
	nb := int(res.elapsed/bucket) + 1
	lats := make([][]time.Duration, nb)
	var fails plotter.XYs
	nfail := 0
	for _, s := range res.samples {
		if s.kind != 0 {
			nfail++
			continue
		}
		b := min(int(s.at/bucket), nb-1)
		lats[b] = append(lats[b], s.lat)
	}
	step := max(1, nfail/maxFailureMarks)
	i := 0
	for _, s := range res.samples {
		if s.kind == 0 {
			continue
		}
		if i%step == 0 {
			fails = append(fails, plotter.XY{X: s.at.Seconds(), Y: ms(s.lat)})
		}
		i++
	}
	// A bucket in which no login started that passed breaks the lines: a stall shows as a gap, not as a
	// straight line drawn across it.
	var p50, p99, pmax []plotter.XYs
	gap := true
	for b, l := range lats {
		if len(l) == 0 {
			gap = true
			continue
		}
		if gap {
			p50, p99, pmax = append(p50, nil), append(p99, nil), append(pmax, nil)
			gap = false
		}
		slices.Sort(l)
		x := (time.Duration(b)*bucket + bucket/2).Seconds()
		at := func(q float64) time.Duration { return l[max(0, min(len(l)-1, int(math.Ceil(q*float64(len(l))))-1))] }
		i := len(p50) - 1
		p50[i] = append(p50[i], plotter.XY{X: x, Y: ms(at(0.5))})
		p99[i] = append(p99[i], plotter.XY{X: x, Y: ms(at(0.99))})
		pmax[i] = append(pmax[i], plotter.XY{X: x, Y: ms(l[len(l)-1])})
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, set := range append(append([]plotter.XYs{fails}, p50...), pmax...) {
		for _, v := range set {
			lo, hi = math.Min(lo, v.Y), math.Max(hi, v.Y)
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.01, 10
	}
	lo, hi = lo/1.5, hi*1.5
	p.Y.Min, p.Y.Max = lo, hi
	p.X.Min, p.X.Max = 0, math.Max(res.elapsed.Seconds(), 0.001)

	for _, l := range []struct {
		name string
		segs []plotter.XYs
		col  color.Color
		dash []vg.Length
	}{{"max", pmax, colMax, []vg.Length{vg.Points(2), vg.Points(2)}}, {"p99", p99, colP99, nil}, {"p50", p50, colP50, nil}} {
		for i, seg := range l.segs {
			line, err := plotter.NewLine(seg)
			if err != nil {
				return nil, err
			}
			line.Color, line.Dashes, line.Width = l.col, l.dash, vg.Points(1.2)
			p.Add(line)
			if i == 0 {
				p.Legend.Add(l.name, line)
			}
		}
	}
	if len(fails) > 0 {
		sc, err := plotter.NewScatter(fails)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Shape = draw.CrossGlyph{}
		sc.GlyphStyle.Color = colFailure
		sc.GlyphStyle.Radius = vg.Points(2.5)
		p.Add(sc)
		p.Legend.Add(fmt.Sprintf("failed login (%d)", nfail), sc)
	}
	for _, e := range res.Events {
		x := e.At.Seconds()
		line, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
		if err != nil {
			return nil, err
		}
		line.Color, line.Width, line.Dashes = colFailure, vg.Points(1.5), []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(line)
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: hi / 1.3}}, Labels: []string{" " + e.Name}})
		if err != nil {
			return nil, err
		}
		for i := range lab.TextStyle {
			lab.TextStyle[i].Color = colFailure
		}
		p.Add(lab)
	}
	return p, nil
}
