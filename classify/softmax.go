package classify

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/optimize"
)

// Settings configure Fit. The zero value of each field means its default.
type Settings struct {
	C       float64 // inverse L2 strength, as scikit-learn's C; default 1
	GradTol float64 // stop when max |gradient| < GradTol; default 1e-6
	MaxIter int     // L-BFGS iterations at most; default 10000
}

// Model is a fitted softmax regression, including the standardisation.
type Model struct {
	Classes, Features int
	Mean, Scale       []float64 // x_std = (x − Mean)/Scale
	W                 []float64 // Classes × Features, on standardised features
	B                 []float64 // Classes
}

// Fit is how a fit ended.
type Fit struct {
	Iterations int     `json:"iterations"`
	Objective  float64 `json:"objective"`
	GradNorm   float64 `json:"grad_norm"` // max |gradient| at the end
	Converged  bool    `json:"converged"` // GradNorm < GradTol
	Status     string  `json:"status"`    // gonum/optimize's status
}

// Train fits a model to n rows of d features x (n×d, row-major) with labels
// in [0, classes).
func Train(x []float32, labels []byte, d, classes int, s Settings) (*Model, *Fit, error) {
	n := len(labels)
	if d < 1 || classes < 2 || n < 1 || len(x) != n*d {
		return nil, nil, fmt.Errorf("classify: %d values for %d rows of %d features, %d classes", len(x), n, d, classes)
	}
	for i, l := range labels {
		if int(l) >= classes {
			return nil, nil, fmt.Errorf("classify: label %d of row %d is not below %d classes", l, i, classes)
		}
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil, fmt.Errorf("classify: feature %d of row %d is %v", i%d, i/d, v)
		}
	}
	if s.C == 0 {
		s.C = 1
	}
	if s.GradTol == 0 {
		s.GradTol = 1e-6
	}
	if s.MaxIter == 0 {
		s.MaxIter = 10000
	}
	if s.C < 0 || s.GradTol < 0 || s.MaxIter < 0 {
		return nil, nil, errors.New("classify: C, GradTol and MaxIter must be positive")
	}
	m := &Model{Classes: classes, Features: d, Mean: make([]float64, d), Scale: make([]float64, d)}
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			m.Mean[j] += float64(x[i*d+j])
		}
	}
	for j := range m.Mean {
		m.Mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			v := float64(x[i*d+j]) - m.Mean[j]
			m.Scale[j] += v * v
		}
	}
	for j := range m.Scale {
		m.Scale[j] = math.Sqrt(m.Scale[j] / float64(n))
		if m.Scale[j] == 0 {
			m.Scale[j] = 1 // a constant feature: leave it at 0
		}
	}
	// Standardised copy in float32 (half the memory of float64: 188 MB
	// for MNIST's pixels); products and sums are taken in float64.
	xs := make([]float32, len(x))
	for i := range xs {
		xs[i] = float32((float64(x[i]) - m.Mean[i%d]) / m.Scale[i%d])
	}
	obj := objective{x: xs, y: labels, n: n, d: d, k: classes, lambda: 1 / (s.C * float64(n))}
	p := optimize.Problem{
		Func: func(w []float64) float64 { return obj.eval(w, nil) },
		Grad: func(g, w []float64) { obj.eval(w, g) },
	}
	settings := &optimize.Settings{
		GradientThreshold: s.GradTol,
		MajorIterations:   s.MaxIter,
		Converger:         optimize.NeverTerminate{}, // stop on the gradient, not on a stalled objective
	}
	res, err := optimize.Minimize(p, make([]float64, classes*(d+1)), settings, &optimize.LBFGS{})
	if res == nil {
		return nil, nil, fmt.Errorf("classify: %w", err)
	}
	g := make([]float64, len(res.X))
	fit := &Fit{Iterations: res.Stats.MajorIterations, Objective: obj.eval(res.X, g), Status: res.Status.String()}
	for _, v := range g {
		fit.GradNorm = math.Max(fit.GradNorm, math.Abs(v))
	}
	fit.Converged = fit.GradNorm < s.GradTol
	if err != nil && !fit.Converged {
		// Line-search failures near the optimum are common in float64; the
		// gradient says whether the fit is usable.
		fit.Status += ": " + err.Error()
	}
	m.W = res.X[:classes*d]
	m.B = res.X[classes*d:]
	return m, fit, nil
}

// objective is the scaled L2-penalised softmax loss of standardised rows.
// Parameters: W (k×d) then b (k).
type objective struct {
	x      []float32
	y      []byte
	n, d   int
	k      int
	lambda float64
}

// eval returns the objective at w and, when grad is not nil, writes its
// gradient. Rows are split into a fixed number of parts whatever GOMAXPROCS,
// so the result does not depend on scheduling.
func (o *objective) eval(w, grad []float64) float64 {
	const parts = 8
	k, d := o.k, o.d
	losses := make([]float64, parts)
	var grads [][]float64
	if grad != nil {
		grads = make([][]float64, parts)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for p := 0; p < parts; p++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(p int) {
			defer func() { <-sem; wg.Done() }()
			var g []float64
			if grad != nil {
				g = make([]float64, len(w))
				grads[p] = g
			}
			z := make([]float64, k)
			for i := p * o.n / parts; i < (p+1)*o.n/parts; i++ {
				row := o.x[i*d : (i+1)*d]
				zmax := math.Inf(-1)
				for c := 0; c < k; c++ {
					s := w[k*d+c]
					for j, v := range row {
						s += w[c*d+j] * float64(v)
					}
					z[c] = s
					zmax = math.Max(zmax, s)
				}
				var sum float64
				for c := range z {
					sum += math.Exp(z[c] - zmax)
				}
				lse := zmax + math.Log(sum)
				losses[p] += lse - z[o.y[i]]
				if g == nil {
					continue
				}
				for c := 0; c < k; c++ {
					r := math.Exp(z[c] - lse)
					if c == int(o.y[i]) {
						r--
					}
					gc := g[c*d : (c+1)*d]
					for j, v := range row {
						gc[j] += r * float64(v)
					}
					g[k*d+c] += r
				}
			}
		}(p)
	}
	wg.Wait()
	var loss, reg float64
	for _, l := range losses {
		loss += l
	}
	for _, v := range w[:k*d] {
		reg += v * v
	}
	f := loss/float64(o.n) + o.lambda*reg/2
	if grad != nil {
		clear(grad)
		for _, g := range grads {
			for i, v := range g {
				grad[i] += v
			}
		}
		for i := range grad {
			grad[i] /= float64(o.n)
			if i < k*d {
				grad[i] += o.lambda * w[i]
			}
		}
	}
	return f
}

// Predict returns the most probable class of each of the rows of x (n×d).
func (m *Model) Predict(x []float32) []int {
	n := len(x) / m.Features
	out := make([]int, n)
	xs := make([]float64, m.Features)
	for i := range out {
		for j := range xs {
			xs[j] = (float64(x[i*m.Features+j]) - m.Mean[j]) / m.Scale[j]
		}
		best, bestZ := 0, math.Inf(-1)
		for c := 0; c < m.Classes; c++ {
			z := m.B[c]
			for j, v := range xs {
				z += m.W[c*m.Features+j] * v
			}
			if z > bestZ {
				best, bestZ = c, z
			}
		}
		out[i] = best
	}
	return out
}

// Score returns the accuracy of predictions against labels and the
// confusion matrix, conf[true][predicted].
func Score(pred []int, labels []byte, classes int) (accuracy float64, conf [][]int) {
	conf = make([][]int, classes)
	for i := range conf {
		conf[i] = make([]int, classes)
	}
	right := 0
	for i, p := range pred {
		conf[labels[i]][p]++
		if p == int(labels[i]) {
			right++
		}
	}
	return float64(right) / float64(len(pred)), conf
}
