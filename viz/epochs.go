package viz

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
)

// An EpochCurve is what EM does to one layer, epoch by epoch: the
// validation accuracy of its features after Epochs[i] epochs (0: the
// seeded kernels) and its log-likelihood LogLik[e] in epoch e+1, under the
// kernels before its update. With Trained, the last value of LogLik is
// the LL of the kernels after the last epoch (em's FinalLogLik), so that
// LogLik[e] is the LL of the kernels after e epochs, as Accuracy's are.
type EpochCurve struct {
	Name     string
	Epochs   []int
	Accuracy []float64 // in [0, 1]
	LogLik   []float64
	Trained  bool
}

// SaveEpochs writes the epoch curve as a PNG of two panels side by side:
// validation accuracy (%) against EM epoch, from the seeding (epoch 0) on,
// and the log-likelihood of each epoch (with Trained, of the kernels after
// each epoch, on the same axis as the accuracy).
func SaveEpochs(path, title string, c EpochCurve) error {
	if len(c.Epochs) == 0 || len(c.Epochs) != len(c.Accuracy) {
		return fmt.Errorf("viz: %s: %d epochs for %d accuracies", c.Name, len(c.Epochs), len(c.Accuracy))
	}
	acc := plot.New()
	acc.Title.Text = "validation accuracy of " + c.Name
	acc.X.Label.Text = "EM epochs (0: seeded)"
	acc.Y.Label.Text = "validation accuracy (%)"
	acc.Add(plotter.NewGrid())
	xy := make(plotter.XYs, len(c.Epochs))
	last := 0
	for i, e := range c.Epochs {
		a := c.Accuracy[i]
		if e < 0 || math.IsNaN(a) || a < 0 || a > 1 {
			return fmt.Errorf("viz: %s: epoch %d, accuracy %v", c.Name, e, a)
		}
		xy[i] = plotter.XY{X: float64(e), Y: 100 * a}
		last = max(last, e)
	}
	line, points, err := plotter.NewLinePoints(xy)
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	line.Color, points.Color = plotutil.Color(0), plotutil.Color(0)
	acc.Add(line, points)
	acc.Y.Tick.Marker = percentTicks{}
	acc.X.Min, acc.X.Max = -0.5, float64(last)+0.5
	if last <= 30 {
		acc.X.Tick.Marker = epochTicks{0, last}
	}
	plots := []*plot.Plot{acc}
	if len(c.LogLik) > 0 {
		ll := plot.New()
		ll.Title.Text = "log-likelihood Σ ℓ per epoch"
		ll.X.Label.Text = "EM epoch (its LL is under the kernels before it)"
		first := 1 // the x of LogLik[0]
		if c.Trained {
			ll.Title.Text = "log-likelihood Σ ℓ of the kernels"
			ll.X.Label.Text = "EM epochs (0: seeded)"
			first = 0
		}
		ll.Y.Label.Text = "log-likelihood"
		ll.Add(plotter.NewGrid())
		pts := make(plotter.XYs, len(c.LogLik))
		for e, v := range c.LogLik {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("viz: %s: log-likelihood of epoch %d is %v", c.Name, e+1, v)
			}
			pts[e] = plotter.XY{X: float64(first + e), Y: v}
		}
		if maxAbs(c.LogLik) >= 1e6 {
			for i := range pts {
				pts[i].Y /= 1e6
			}
			ll.Y.Label.Text += ", millions"
		}
		l2, p2, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("viz: %w", err)
		}
		l2.Color, p2.Color = plotutil.Color(1), plotutil.Color(1)
		ll.Add(l2, p2)
		lastX := first + len(c.LogLik) - 1
		ll.X.Min, ll.X.Max = float64(first)-0.5, float64(lastX)+0.5
		if len(c.LogLik) <= 30 {
			ll.X.Tick.Marker = epochTicks{first, lastX}
		}
		plots = append(plots, ll)
	}
	return savePanels(path, title, plots)
}

// percentTicks labels an axis of percentages with as many decimals as its
// range needs: a step of 1, 2 or 5 times a power of ten, about five ticks.
type percentTicks struct{}

func (percentTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: fmt.Sprintf("%g", lo)}}
	}
	raw := (hi - lo) / 5
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%.*f", decimals, v)})
	}
	return ticks
}
