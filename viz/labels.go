package viz

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// A Series is the accuracy of one feature set against a count: the
// labelled training images its classifier saw, or the kernels of a layer.
type Series struct {
	Name     string
	Labels   []int     // the counts, increasing
	Accuracy []float64 // accuracy in [0, 1], one per entry of Labels
}

// SaveLabels writes the label-efficiency figure as a PNG: test accuracy (%)
// against the number of labelled training images (log scale), one line
// per series.
func SaveLabels(path, title string, series ...Series) error {
	return SaveAccuracy(path, title, "labelled training images", "test accuracy (%)", series...)
}

// SaveAccuracy writes accuracy (%) against a count on a log scale (Labels
// holds the counts: labelled images, kernels, …) as a PNG, one line per
// series, under the given title and axis labels.
func SaveAccuracy(path, title, xLabel, yLabel string, series ...Series) error {
	if len(series) == 0 {
		return fmt.Errorf("viz: no series to plot")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	var counts countTicks
	for _, s := range series {
		for _, n := range s.Labels {
			if !slices.Contains(counts, n) {
				counts = append(counts, n)
			}
		}
	}
	p.X.Tick.Marker = counts
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = false, false
	lo, hi := 100.0, 0.0
	for i, s := range series {
		if len(s.Labels) == 0 || len(s.Labels) != len(s.Accuracy) {
			return fmt.Errorf("viz: %s: %d counts for %d accuracies", s.Name, len(s.Labels), len(s.Accuracy))
		}
		xy := make(plotter.XYs, len(s.Labels))
		for j := range xy {
			a := s.Accuracy[j]
			if s.Labels[j] < 1 || math.IsNaN(a) || a < 0 || a > 1 {
				return fmt.Errorf("viz: %s: count %d, accuracy %v", s.Name, s.Labels[j], a)
			}
			xy[j] = plotter.XY{X: float64(s.Labels[j]), Y: 100 * a}
			lo, hi = math.Min(lo, 100*a), math.Max(hi, 100*a)
		}
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("viz: %w", err)
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(s.Name, line, points)
	}
	// Whole steps of 5 % around the curves, or of 0.5 % when they are close.
	step := 5.0
	if hi-lo < 3 {
		step = 0.5
	}
	p.Y.Min, p.Y.Max = math.Floor(lo/step)*step, math.Min(100, math.Ceil(hi/step)*step+step/2)
	p.Y.Tick.Marker = percentTicks{}
	return savePlot(path, p, 6*vg.Inch, 4.5*vg.Inch)
}

// countTicks labels a log axis at the counts measured.
type countTicks []int

func (c countTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for _, n := range c {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: strconv.Itoa(n)})
	}
	return ticks
}
