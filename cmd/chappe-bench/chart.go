package main

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// drawChart draws p50 and p99 of each latency figure as horizontal bars
// (the dataset build, a duration of another scale, is left out).
func drawChart(path string, rs []result) error {
	var names []string
	var p50, p99 plotter.Values
	for _, r := range rs {
		if r.Count == 0 || r.P50ms == 0 {
			continue
		}
		names = append(names, fmt.Sprintf("%s  [p50 %.1f ms]", r.Scenario, r.P50ms))
		p50 = append(p50, r.P50ms)
		p99 = append(p99, r.P99ms)
	}
	if len(names) == 0 {
		return fmt.Errorf("no latency figure to draw")
	}
	p := plot.New()
	p.Title.Text = "chappe-bench"
	p.X.Label.Text = "ms"
	w := vg.Points(7)
	b50, err := plotter.NewBarChart(p50, w)
	if err != nil {
		return err
	}
	b99, err := plotter.NewBarChart(p99, w)
	if err != nil {
		return err
	}
	for i, b := range []*plotter.BarChart{b50, b99} {
		b.Horizontal = true
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(i)
	}
	b50.Offset, b99.Offset = -w/2, w/2
	p.Add(b50, b99)
	p.Legend.Add("p50", b50)
	p.Legend.Add("p99", b99)
	p.Legend.Top = true
	p.NominalY(names...)
	height := vg.Length(len(names))*28*vg.Millimeter/10 + 4*vg.Centimeter
	return p.Save(24*vg.Centimeter, height, path)
}
