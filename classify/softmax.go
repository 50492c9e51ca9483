package classify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"calm/gemm"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/optimize"
)

// A Loss is what a fit minimises for each row, besides the L2 penalty.
type Loss int

const (
	// Softmax is the multinomial logistic loss, −log softmax(W·x + b)[y]:
	// the CALM paper's classifier.
	Softmax Loss = iota
	// SquaredHinge is the one-vs-rest L2-SVM's loss, Σ_c max(0, 1 −
	// t_c·(W·x + b)_c)² with t_c = +1 for the row's class and −1 for the
	// others: the classifier of Coates, Lee & Ng and the other anchors.
	SquaredHinge
)

var lossNames = []string{Softmax: "softmax", SquaredHinge: "svm"}

// String returns the loss's name: "softmax" or "svm".
func (l Loss) String() string {
	if int(l) < len(lossNames) {
		return lossNames[l]
	}
	return fmt.Sprintf("Loss(%d)", int(l))
}

// ParseLoss returns the loss of the given name (see String).
func ParseLoss(name string) (Loss, error) {
	if i := slices.Index(lossNames, name); i >= 0 {
		return Loss(i), nil
	}
	return 0, fmt.Errorf("classify: unknown classifier %q: want %v", name, lossNames)
}

// MarshalText writes the loss's name.
func (l Loss) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a loss's name.
func (l *Loss) UnmarshalText(b []byte) error {
	v, err := ParseLoss(string(b))
	*l = v
	return err
}

// Settings configure Train. The zero value of each field means its default.
type Settings struct {
	Loss    Loss    // default Softmax
	C       float64 // inverse L2 strength, as scikit-learn's C; default 1
	GradTol float64 // stop when max |gradient| < GradTol; default 1e-4 (1e-8 with Exact)
	MaxIter int     // L-BFGS iterations at most; default 10000

	// Context, when cancelled, stops a fit within an iteration: Train then
	// returns its error. Nil means never.
	Context context.Context

	// Start, when not nil, is the model the fit starts from (one of the
	// same classes and features, fitted with another C or on other rows):
	// its weights on the standardised features, unless the objective is no
	// lower there than at zero. The optimum does not depend on it; the
	// iterations to reach it do: a fit next to another starts near its
	// optimum (nil: from zero).
	Start *Model

	// Exact computes the products in float64 (gonum's Dgemm) instead of
	// float32 GEMMs: many times slower, for small problems whose optimum
	// is wanted to the last digits. In float32 the objective is exact to
	// about 1e-7 relative, which bounds the gradient L-BFGS can reach to
	// about 1e-5: the default GradTol stops well before that.
	Exact bool
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
	Iterations  int     `json:"iterations"`
	Evaluations int     `json:"evaluations"` // of the objective and its gradient
	Objective   float64 `json:"objective"`
	GradNorm    float64 `json:"grad_norm"` // max |gradient| at the end
	Converged   bool    `json:"converged"` // GradNorm < GradTol
	Status      string  `json:"status"`    // gonum/optimize's status
}

// Train fits a model to n rows of d features x (n×d, row-major) with labels
// in [0, classes). x is left as it is; Train works on a standardised copy.
func Train(x []float32, labels []byte, d, classes int, s Settings) (*Model, *Fit, error) {
	if len(x) != len(labels)*d {
		return nil, nil, fmt.Errorf("classify: %d values for %d rows of %d features", len(x), len(labels), d)
	}
	return TrainInPlace(slices.Clone(x), labels, d, classes, s)
}

// TrainInPlace is Train without the copy: it standardises x in place, so
// that x holds afterwards the rows the model was fitted on (see
// Model.PredictStandardised). It halves the memory a fit takes.
func TrainInPlace(x []float32, labels []byte, d, classes int, s Settings) (*Model, *Fit, error) {
	m, err := standardiseInPlace(x, labels, d, classes)
	if err != nil {
		return nil, nil, err
	}
	return m.fit(x, labels, s)
}

// standardiseInPlace checks n rows of d features x and their labels and
// returns a model of their moments (without weights), x standardised in
// place by it.
func standardiseInPlace(x []float32, labels []byte, d, classes int) (*Model, error) {
	n := len(labels)
	if d < 1 || classes < 2 || n < 1 || len(x) != n*d {
		return nil, fmt.Errorf("classify: %d values for %d rows of %d features, %d classes", len(x), n, d, classes)
	}
	for i, l := range labels {
		if int(l) >= classes {
			return nil, fmt.Errorf("classify: label %d of row %d is not below %d classes", l, i, classes)
		}
	}
	for i, v := range x {
		if v-v != 0 {
			return nil, fmt.Errorf("classify: feature %d of row %d is %v", i%d, i/d, v)
		}
	}
	m := &Model{Classes: classes, Features: d}
	m.Mean, m.Scale = moments(x, n, d)
	// Standardised rows in float32; the products are float32 GEMMs, the
	// sums over rows float64.
	m.Standardise(x, x)
	return m, nil
}

// fit returns a model of base's moments fitted to the rows xs,
// standardised by base, with their labels.
func (base *Model) fit(xs []float32, labels []byte, s Settings) (*Model, *Fit, error) {
	n, d, classes := len(labels), base.Features, base.Classes
	if s.C == 0 {
		s.C = 1
	}
	if s.GradTol == 0 {
		s.GradTol = 1e-4
		if s.Exact {
			s.GradTol = 1e-8
		}
	}
	if s.MaxIter == 0 {
		s.MaxIter = 10000
	}
	if s.C < 0 || s.GradTol < 0 || s.MaxIter < 0 {
		return nil, nil, errors.New("classify: C, GradTol and MaxIter must be positive")
	}
	if s.Loss != Softmax && s.Loss != SquaredHinge {
		return nil, nil, fmt.Errorf("classify: unknown loss %v", s.Loss)
	}
	m := &Model{Classes: classes, Features: d, Mean: base.Mean, Scale: base.Scale}
	obj := newObjective(xs, labels, n, d, classes, 1/(s.C*float64(n)), s.Exact)
	obj.hinge = s.Loss == SquaredHinge
	p := optimize.Problem{
		Func: func(w []float64) float64 { return obj.eval(w, nil) },
		Grad: func(g, w []float64) { obj.eval(w, g) },
	}
	settings := &optimize.Settings{
		GradientThreshold: s.GradTol,
		MajorIterations:   s.MaxIter,
		Converger:         optimize.NeverTerminate{}, // stop on the gradient, not on a stalled objective
	}
	if s.Context != nil {
		settings.Recorder = stopper{s.Context}
	}
	w0 := make([]float64, classes*(d+1))
	if s.Start != nil {
		if s.Start.Classes != classes || s.Start.Features != d {
			return nil, nil, fmt.Errorf("classify: a start of %d classes and %d features for a fit of %d and %d", s.Start.Classes, s.Start.Features, classes, d)
		}
		// The start's weights on standardised features, as they are:
		// carried to this fit's moments exactly, a feature near constant
		// in the start's rows would get a weight far too large.
		copy(w0, s.Start.W)
		copy(w0[classes*d:], s.Start.B)
		if !(obj.eval(w0, nil) < obj.eval(make([]float64, len(w0)), nil)) {
			clear(w0)
		}
	}
	res, err := optimize.Minimize(p, w0, settings, &optimize.LBFGS{})
	if s.Context != nil && s.Context.Err() != nil {
		return nil, nil, fmt.Errorf("classify: %w", context.Cause(s.Context))
	}
	if res == nil {
		return nil, nil, fmt.Errorf("classify: %w", err)
	}
	g := make([]float64, len(res.X))
	fit := &Fit{Iterations: res.Stats.MajorIterations, Evaluations: res.Stats.GradEvaluations + 1,
		Objective: obj.eval(res.X, g), Status: res.Status.String()}
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

// stopper is an optimize.Recorder that stops the fit once its context is
// cancelled.
type stopper struct{ ctx context.Context }

func (stopper) Init() error { return nil }

func (r stopper) Record(*optimize.Location, optimize.Operation, *optimize.Stats) error {
	return r.ctx.Err()
}

// moments returns each column's mean and standard deviation (1 for a
// constant column, which then stays 0 once standardised).
func moments(x []float32, n, d int) (mean, scale []float64) {
	mean, scale = make([]float64, d), make([]float64, d)
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			dv := float64(v) - mean[j]
			scale[j] += dv * dv
		}
	}
	for j := range scale {
		scale[j] = math.Sqrt(scale[j] / float64(n))
		if scale[j] == 0 {
			scale[j] = 1
		}
	}
	return mean, scale
}

// Standardise writes the rows of x (n×d) standardised as the model sees
// them, (x − Mean)/Scale, into dst (which may be x).
func (m *Model) Standardise(dst, x []float32) {
	d := m.Features
	for i := range x {
		j := i % d
		dst[i] = float32((float64(x[i]) - m.Mean[j]) / m.Scale[j])
	}
}

// blockRows returns the number of rows of d features one pass of the
// objective multiplies at once: a block of about 256 KB, which stays in
// L2 between the two products that read it.
func blockRows(d int) int { return min(max(1<<19/d, 16), 1024) }

// shards is the fixed number of partial gradients, summed in order, so
// that results do not depend on GOMAXPROCS.
const shards = 16

// objective is the scaled L2-penalised softmax loss of standardised rows.
// Parameters: W (k×d) then b (k).
type objective struct {
	x      []float32
	y      []byte
	n, d   int
	k      int
	lambda float64
	exact  bool
	hinge  bool // the squared hinge loss, not the softmax's
	narrow bool // the products by gemm.Narrow (ten classes or fewer, its kernels on this CPU)
	rows   int  // rows of a block
	parts  []part
}

// part is one shard's work space and results.
type part struct {
	first, last int // rows [first, last)
	loss        float64
	bsum        []float64 // Σ (P − Y) per class
	z           []float64 // one row's logits, then P − Y

	// float32 products
	w  []float32 // the parameters W (k×d)
	wt gemm.PackedB
	// where each row of a block, and each feature of a row, starts
	rowAt, cols []int32
	zb          []float32 // blockRows × k logits, then P − Y
	gt          []float32 // Σ rowsᵀ·(P − Y), d×k
	ws          gemm.Workspace

	// narrow products (gemm.Narrow), when the CPU has their kernels
	wn, gn *gemm.Narrow
	zn     []float32 // blockRows × NarrowRows logits, then P − Y

	// float64 products (exact)
	xb64, zb64, gt64 []float64
}

func newObjective(x []float32, y []byte, n, d, k int, lambda float64, exact bool) *objective {
	return newObjectiveWith(x, y, n, d, k, lambda, exact, !exact && k <= gemm.NarrowRows && gemm.NarrowFast())
}

// newObjectiveWith is newObjective with the choice of the narrow products
// made by the caller (the tests try both).
func newObjectiveWith(x []float32, y []byte, n, d, k int, lambda float64, exact, narrow bool) *objective {
	o := &objective{x: x, y: y, n: n, d: d, k: k, lambda: lambda, exact: exact, narrow: narrow, rows: blockRows(d), parts: make([]part, shards)}
	if narrow {
		o.rows = narrowBlockRows(d)
	}
	for s := range o.parts {
		p := &o.parts[s]
		p.first, p.last = s*n/shards, (s+1)*n/shards
		p.bsum = make([]float64, k)
		p.z = make([]float64, k)
		switch {
		case exact:
			p.xb64, p.zb64, p.gt64 = make([]float64, o.rows*d), make([]float64, o.rows*k), make([]float64, d*k)
		case narrow:
			p.w, p.zn = make([]float32, k*d), make([]float32, o.rows*gemm.NarrowRows)
			var err error
			if p.wn, err = gemm.NewNarrow(k, d); err != nil {
				panic(err) // k ≤ NarrowRows and d ≥ 1 are checked by the callers
			}
			p.gn, _ = gemm.NewNarrow(k, d)
		default:
			p.w, p.zb, p.gt = make([]float32, k*d), make([]float32, o.rows*k), make([]float32, d*k)
		}
	}
	return o
}

// narrowBlockRows returns the rows of d features a pass of the narrow
// products takes at once: about 512 KB, which stays in L2 (of 1–2 MB on
// the hosts this runs on) from the scores to the gradient.
func narrowBlockRows(d int) int { return min(max(1<<17/d, 2), 1024) }

// eval returns the objective at w and, when grad is not nil, writes its
// gradient. Each shard of rows passes over its blocks once: logits
// Z = X·Wᵀ + b, softmax, then Gᵀ += Xᵀ·(P − Y) while the block is still in
// cache.
func (o *objective) eval(w, grad []float64) float64 {
	k, d := o.k, o.d
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for s := range o.parts {
		wg.Add(1)
		sem <- struct{}{}
		go func(p *part) {
			defer func() { <-sem; wg.Done() }()
			switch {
			case o.exact:
				o.pass64(p, w, grad != nil)
			case o.narrow:
				o.passNarrow(p, w, grad != nil)
			default:
				o.pass32(p, w, grad != nil)
			}
		}(&o.parts[s])
	}
	wg.Wait()
	var loss, reg float64
	for s := range o.parts {
		loss += o.parts[s].loss
	}
	for _, v := range w[:k*d] {
		reg += v * v
	}
	f := loss/float64(o.n) + o.lambda*reg/2
	if grad == nil {
		return f
	}
	clear(grad)
	for s := range o.parts {
		p := &o.parts[s]
		if o.narrow {
			p.gn.AddTo(grad[:k*d])
			for c, v := range p.bsum {
				grad[k*d+c] += v
			}
			continue
		}
		for j := 0; j < d; j++ {
			for c := 0; c < k; c++ {
				if o.exact {
					grad[c*d+j] += p.gt64[j*k+c]
				} else {
					grad[c*d+j] += float64(p.gt[j*k+c])
				}
			}
		}
		for c, v := range p.bsum {
			grad[k*d+c] += v
		}
	}
	for i := range grad {
		grad[i] /= float64(o.n)
		if i < k*d {
			grad[i] += o.lambda * w[i]
		}
	}
	return f
}

// rowLoss adds row i's loss to p.loss given its logits p.z (without the
// intercept b) and, if grad, turns p.z into P − Y and adds it to p.bsum:
// for the squared hinge loss, its gradient with respect to the scores.
func (o *objective) rowLoss(p *part, i int, b []float64, grad bool) {
	z := p.z
	if o.hinge {
		y := int(o.y[i])
		for c := range z {
			t := -1.0
			if c == y {
				t = 1
			}
			m := 1 - t*(z[c]+b[c])
			r := 0.0
			if m > 0 {
				p.loss += m * m
				r = -2 * t * m
			}
			if grad {
				z[c] = r
				p.bsum[c] += r
			}
		}
		return
	}
	zmax := math.Inf(-1)
	for c := range z {
		z[c] += b[c]
		zmax = math.Max(zmax, z[c])
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(v - zmax)
	}
	lse := zmax + math.Log(sum)
	y := int(o.y[i])
	p.loss += lse - z[y]
	if !grad {
		return
	}
	for c := range z {
		r := math.Exp(z[c] - lse)
		if c == y {
			r--
		}
		z[c] = r
		p.bsum[c] += r
	}
}

// blockLoss adds the loss of rows lo…lo+rows−1 given their logits in zb
// (a row's k values ldz apart, without the intercept b) and, if grad,
// turns each row's logits into the loss's gradient with respect to them
// (rowLoss).
func (o *objective) blockLoss(p *part, zb []float32, ldz, lo, rows int, b []float64, grad bool) {
	for i := 0; i < rows; i++ {
		zi := zb[i*ldz : i*ldz+o.k]
		for c, v := range zi {
			p.z[c] = float64(v)
		}
		o.rowLoss(p, lo+i, b, grad)
		for c, v := range p.z {
			zi[c] = float32(v)
		}
	}
}

// pass32 computes one shard's loss and, if grad, its gradient sums with
// float32 GEMMs.
func (o *objective) pass32(p *part, w []float64, grad bool) {
	k, d := o.k, o.d
	for i, v := range w[:k*d] {
		p.w[i] = float32(v)
	}
	p.loss = 0
	clear(p.gt)
	clear(p.bsum)
	// Wᵀ (d×k) packed once for every block of rows, which is read as a
	// gathered matrix: the same products, bit for bit, as gemm.Mul's.
	p.wt.Pack(p.ws.MicroKernel, d, k, 1, gemm.Matrix{Data: p.w, Stride: d, T: true})
	if len(p.cols) != d {
		p.cols = make([]int32, d)
		for j := range p.cols {
			p.cols[j] = int32(j)
		}
		p.rowAt = make([]int32, o.rows)
		for i := range p.rowAt {
			p.rowAt[i] = int32(i * d)
		}
	}
	for lo := p.first; lo < p.last; lo += o.rows {
		rows := min(o.rows, p.last-lo)
		xb := o.x[lo*d : (lo+rows)*d]
		zb := p.zb[:rows*k]
		clear(zb)
		gemm.MulGather(gemm.Gather{Src: xb, Rows: p.rowAt[:rows], Cols: p.cols}, &p.wt, zb, k, &p.ws)
		o.blockLoss(p, zb, k, lo, rows, w[k*d:], grad)
		if grad {
			// Gᵀ (d×k) += X_blockᵀ (d×rows) · (P − Y) (rows×k).
			gemm.Mul(d, k, rows, 1, gemm.Matrix{Data: xb, Stride: d, T: true}, gemm.Matrix{Data: zb, Stride: k}, 1, p.gt, k, &p.ws)
		}
	}
}

// passNarrow is pass32 with the narrow products (gemm.Narrow), which read
// each block of rows once from memory for the scores and again from
// cache for the gradient.
func (o *objective) passNarrow(p *part, w []float64, grad bool) {
	k, d := o.k, o.d
	const ldz = gemm.NarrowRows
	for i, v := range w[:k*d] {
		p.w[i] = float32(v)
	}
	p.wn.Set(p.w)
	p.loss = 0
	p.gn.Zero()
	clear(p.bsum)
	clear(p.zn) // the columns past k stay 0: AddMul reads them
	for lo := p.first; lo < p.last; lo += o.rows {
		rows := min(o.rows, p.last-lo)
		xb := o.x[lo*d : (lo+rows)*d]
		zb := p.zn[:rows*ldz]
		gemm.MulNarrow(zb, ldz, xb, rows, d, p.wn)
		o.blockLoss(p, zb, ldz, lo, rows, w[k*d:], grad)
		if grad {
			p.gn.AddMul(zb, ldz, xb, rows, d)
		}
	}
}

// pass64 is pass32 with float64 products.
func (o *objective) pass64(p *part, w []float64, grad bool) {
	k, d := o.k, o.d
	p.loss = 0
	clear(p.gt64)
	clear(p.bsum)
	var impl gonum.Implementation
	for lo := p.first; lo < p.last; lo += o.rows {
		rows := min(o.rows, p.last-lo)
		xb := p.xb64[:rows*d]
		for i, v := range o.x[lo*d : (lo+rows)*d] {
			xb[i] = float64(v)
		}
		zb := p.zb64[:rows*k]
		impl.Dgemm(blas.NoTrans, blas.Trans, rows, k, d, 1, xb, d, w[:k*d], d, 0, zb, k)
		for i := 0; i < rows; i++ {
			copy(p.z, zb[i*k:(i+1)*k])
			o.rowLoss(p, lo+i, w[k*d:], grad)
			copy(zb[i*k:(i+1)*k], p.z)
		}
		if grad {
			impl.Dgemm(blas.Trans, blas.NoTrans, d, k, rows, 1, xb, d, zb, k, 1, p.gt64, k)
		}
	}
}

// Predict returns the most probable class of each of the rows of x (n×d).
func (m *Model) Predict(x []float32) []int { return m.predict(x, true) }

// PredictStandardised is Predict for rows already standardised, as
// TrainInPlace leaves its input.
func (m *Model) PredictStandardised(xs []float32) []int { return m.predict(xs, false) }

func (m *Model) predict(x []float32, standardise bool) []int {
	d, k := m.Features, m.Classes
	n := len(x) / d
	out := make([]int, n)
	w := make([]float32, k*d)
	for i, v := range m.W {
		w[i] = float32(v)
	}
	wt := gemm.Matrix{Data: w, Stride: d, T: true}
	block := blockRows(d)
	parts := min(shards, max(1, n/block))
	var wg sync.WaitGroup
	for s := 0; s < parts; s++ {
		wg.Add(1)
		go func(first, last int) {
			defer wg.Done()
			xs := make([]float32, block*d)
			z := make([]float32, block*k)
			var ws gemm.Workspace
			for lo := first; lo < last; lo += block {
				rows := min(block, last-lo)
				xb := x[lo*d : (lo+rows)*d]
				if standardise {
					m.Standardise(xs[:rows*d], xb)
					xb = xs[:rows*d]
				}
				gemm.Mul(rows, k, d, 1, gemm.Matrix{Data: xb, Stride: d}, wt, 0, z, k, &ws)
				for i := 0; i < rows; i++ {
					best, bestZ := 0, math.Inf(-1)
					for c := 0; c < k; c++ {
						if zc := float64(z[i*k+c]) + m.B[c]; zc > bestZ {
							best, bestZ = c, zc
						}
					}
					out[lo+i] = best
				}
			}
		}(s*n/parts, (s+1)*n/parts)
	}
	wg.Wait()
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
