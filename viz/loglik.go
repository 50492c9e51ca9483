package viz

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// A Curve is the log-likelihood per epoch of one layer: LogLik[e] for
// epoch e+1, under the kernels before its update. With Trained, the last
// value is the LL of the kernels after the last epoch (em's FinalLogLik),
// drawn at the epoch after it as a triangle: what that epoch's E-step would
// measure.
type Curve struct {
	Name    string
	LogLik  []float64
	Trained bool
}

// SaveLogLik writes the log-likelihood per epoch as a PNG: for each curve
// a panel of its LL, from the second epoch on when there are three points
// or more (the first epoch's LL, under the initial θ, is usually far below
// and would flatten the rest; the panel's title gives it), and a last
// panel of every curve's relative gain (LL_e − LL_{e−1})/|LL_{e−1}| on a
// log scale, where curves of different sizes compare (gains ≤ 0, after a
// repair, are left out).
func SaveLogLik(path, title string, curves ...Curve) error {
	if len(curves) == 0 {
		return fmt.Errorf("viz: no log-likelihood to plot")
	}
	var plots []*plot.Plot
	gains := plot.New()
	gains.Title.Text = "relative gain per epoch"
	gains.X.Label.Text = "epoch"
	gains.Y.Label.Text = "relative gain of the log-likelihood"
	gains.Legend.Top = true
	gains.Y.Scale = plot.LogScale{}
	gains.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	gains.Add(plotter.NewGrid())
	anyGain := false
	lo, hi := math.Inf(1), math.Inf(-1)
	epochs := 0
	for ci, c := range curves {
		if len(c.LogLik) == 0 {
			return fmt.Errorf("viz: %s: no log-likelihood to plot", c.Name)
		}
		epochs = max(epochs, len(c.LogLik))
		for i, v := range c.LogLik {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("viz: %s: log-likelihood of epoch %d is %v", c.Name, i+1, v)
			}
		}
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (epoch 1: %.6g)", c.Name, c.LogLik[0])
		p.X.Label.Text = "epoch (its LL is under the kernels before it)"
		if c.Trained {
			p.X.Label.Text = "epoch (under the kernels before it; ▲ the trained kernels)"
		}
		p.Y.Label.Text = "log-likelihood Σ ℓ"
		from := 0
		if len(c.LogLik) >= 3 {
			from = 1
		}
		xy := make(plotter.XYs, 0, len(c.LogLik)-from)
		for e := from; e < len(c.LogLik); e++ {
			xy = append(xy, plotter.XY{X: float64(e + 1), Y: c.LogLik[e]})
		}
		if big := maxAbs(c.LogLik[from:]); big >= 1e6 {
			for i := range xy {
				xy[i].Y /= 1e6
			}
			p.Y.Label.Text += ", millions"
		}
		p.Add(plotter.NewGrid())
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("viz: %w", err)
		}
		line.Color, points.Color = plotutil.Color(ci), plotutil.Color(ci)
		p.Add(line, points)
		if c.Trained {
			last, err := plotter.NewScatter(xy[len(xy)-1:])
			if err != nil {
				return fmt.Errorf("viz: %w", err)
			}
			last.Color, last.Shape, last.Radius = plotutil.Color(ci), draw.PyramidGlyph{}, vg.Points(5)
			p.Add(last)
		}
		p.X.Min, p.X.Max = float64(from)+0.5, float64(len(c.LogLik))+0.5
		if len(c.LogLik) <= 30 {
			p.X.Tick.Marker = epochTicks{from + 1, len(c.LogLik)}
		}
		plots = append(plots, p)

		var g plotter.XYs
		for e := 1; e < len(c.LogLik); e++ {
			if r := (c.LogLik[e] - c.LogLik[e-1]) / math.Abs(c.LogLik[e-1]); r > 0 && !math.IsInf(r, 0) {
				g = append(g, plotter.XY{X: float64(e + 1), Y: r})
				lo, hi = math.Min(lo, r), math.Max(hi, r)
			}
		}
		if len(g) > 0 {
			gl, gp, err := plotter.NewLinePoints(g)
			if err != nil {
				return fmt.Errorf("viz: %w", err)
			}
			gl.Color, gp.Color = plotutil.Color(ci), plotutil.Color(ci)
			gains.Add(gl, gp)
			gains.Legend.Add(c.Name, gl, gp)
			anyGain = true
		}
	}
	if anyGain {
		// Whole decades around the gains: a log axis needs a range.
		gains.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		gains.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
		if gains.Y.Max <= gains.Y.Min {
			gains.Y.Max = gains.Y.Min * 10
		}
		gains.X.Min, gains.X.Max = 1.5, float64(epochs)+0.5
		if epochs <= 30 {
			gains.X.Tick.Marker = epochTicks{2, epochs}
		}
		plots = append(plots, gains)
	}
	return savePanels(path, title, plots)
}

// savePanels writes plots side by side, each 4.5 × 3.5 inches, under one
// title, as a PNG.
func savePanels(path, title string, plots []*plot.Plot) error {
	const w, h = 4.5 * vg.Inch, 3.5 * vg.Inch
	img := vgimg.New(vg.Length(len(plots))*w, h+0.4*vg.Inch)
	dc := draw.New(img)
	top := draw.Crop(dc, 0, 0, 0, -0.4*vg.Inch)
	header := plot.New()
	header.HideAxes()
	header.Title.Text = title
	header.Draw(draw.Crop(dc, 0, 0, h, 0))
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: 4 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	for i, p := range plots {
		p.Draw(tiles.At(top, i, 0))
	}
	return saveCanvas(path, img)
}

func maxAbs(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// epochTicks labels every epoch from first to last.
type epochTicks struct{ first, last int }

func (t epochTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for e := t.first; e <= t.last; e++ {
		ticks = append(ticks, plot.Tick{Value: float64(e), Label: fmt.Sprint(e)})
	}
	return ticks
}
