package viz

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// SaveLogLik writes the log-likelihood per epoch (loglik[e] for epoch e+1)
// as a PNG line plot with labelled axes.
func SaveLogLik(path, title string, loglik []float64) error {
	if len(loglik) == 0 {
		return fmt.Errorf("viz: no log-likelihood to plot")
	}
	xy := make(plotter.XYs, len(loglik))
	for i, v := range loglik {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("viz: log-likelihood of epoch %d is %v", i+1, v)
		}
		xy[i].X, xy[i].Y = float64(i+1), v
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "log-likelihood (sum of ℓ over the images)"
	// Large sums read better in millions than as eight-digit tick labels.
	var big float64
	for _, v := range loglik {
		big = math.Max(big, math.Abs(v))
	}
	if big >= 1e6 {
		for i := range xy {
			xy[i].Y /= 1e6
		}
		p.Y.Label.Text += ", millions"
	}
	if len(loglik) <= 30 {
		p.X.Tick.Marker = epochTicks(len(loglik))
	}
	p.Add(plotter.NewGrid())
	line, points, err := plotter.NewLinePoints(xy)
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	p.Add(line, points)
	p.X.Min, p.X.Max = 0.5, float64(len(loglik))+0.5
	return savePlot(path, p, 6*vg.Inch, 4*vg.Inch)
}

// epochTicks labels every epoch.
type epochTicks int

func (n epochTicks) Ticks(min, max float64) []plot.Tick {
	var t []plot.Tick
	for e := 1; e <= int(n); e++ {
		t = append(t, plot.Tick{Value: float64(e), Label: fmt.Sprint(e)})
	}
	return t
}
