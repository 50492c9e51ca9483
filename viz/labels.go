package viz

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// A Series is the test accuracy of one feature set against the number of
// labelled training images its classifier saw.
type Series struct {
	Name     string
	Labels   []int     // labelled images, increasing
	Accuracy []float64 // test accuracy in [0, 1], one per entry of Labels
}

// SaveLabels writes the label-efficiency figure as a PNG: test accuracy (%)
// against the number of labelled training images (log scale), one line
// per series.
func SaveLabels(path, title string, series ...Series) error {
	if len(series) == 0 {
		return fmt.Errorf("viz: no series to plot")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "labelled training images"
	p.Y.Label.Text = "test accuracy (%)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = false, false
	lo := 100.0
	for i, s := range series {
		if len(s.Labels) == 0 || len(s.Labels) != len(s.Accuracy) {
			return fmt.Errorf("viz: %s: %d label counts for %d accuracies", s.Name, len(s.Labels), len(s.Accuracy))
		}
		xy := make(plotter.XYs, len(s.Labels))
		for j := range xy {
			a := s.Accuracy[j]
			if s.Labels[j] < 1 || math.IsNaN(a) || a < 0 || a > 1 {
				return fmt.Errorf("viz: %s: %d labels, accuracy %v", s.Name, s.Labels[j], a)
			}
			xy[j] = plotter.XY{X: float64(s.Labels[j]), Y: 100 * a}
			lo = math.Min(lo, 100*a)
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
	p.Y.Min, p.Y.Max = math.Floor(lo/5)*5, 100
	return savePlot(path, p, 6*vg.Inch, 4.5*vg.Inch)
}
