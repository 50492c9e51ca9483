// Package graphtest checks an op set (graph.Ops) against direct float64
// loops (package internal/naive), the way gonum's BLAS implementations are
// held to blas/testblas: every op set's tests call TestOps.
//
//	func TestMyOps(t *testing.T) { graphtest.TestOps(t, myOps{}) }
package graphtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/graph"
	"calm/internal/naive"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestOps runs every check on ops: both convolutions, LogSumExp, Posterior
// and Pool, on shapes chosen to reach every edge (1 and 3 channels, odd
// sizes, padding wider than the kernel, a kernel as large as the image,
// kernel counts beyond one GEMM panel, grids that do not divide the
// positions, values of ±1000 and maps whose cells underflow), and the
// types each op refuses when a graph is built.
func TestOps(t *testing.T, ops graph.Ops) {
	t.Run("Conv2d", func(t *testing.T) { testConv2d(t, ops) })
	t.Run("Conv2dFilter", func(t *testing.T) { testConv2dFilter(t, ops) })
	t.Run("LogSumExp", func(t *testing.T) { testLogSumExp(t, ops) })
	t.Run("Posterior", func(t *testing.T) { testPosterior(t, ops) })
	if jp, ok := ops.(graph.JointPosterior); ok {
		t.Run("LogJointPosterior", func(t *testing.T) { testJointPosterior(t, ops, jp) })
	}
	if es, ok := ops.(graph.ExpectedStatser); ok {
		t.Run("ExpectedStats", func(t *testing.T) { testExpectedStats(t, ops, es) })
	}
	t.Run("Pool", func(t *testing.T) { testPool(t, ops) })
	t.Run("Types", func(t *testing.T) { testTypes(t, ops) })
}

// Layers are the convolution shapes of the checks.
var Layers = []struct {
	Name  string
	Layer naive.Layer
}{
	{"C1/pad0", naive.Layer{N: 3, C: 1, Rows: 7, Cols: 7, K: 4, Width: 3, Pad: 0}},
	{"C1/pad2", naive.Layer{N: 2, C: 1, Rows: 8, Cols: 6, K: 5, Width: 5, Pad: 2}},
	{"C3/pad1/odd", naive.Layer{N: 3, C: 3, Rows: 9, Cols: 11, K: 7, Width: 4, Pad: 1}},
	{"C3/kernel=image", naive.Layer{N: 2, C: 3, Rows: 5, Cols: 5, K: 3, Width: 5, Pad: 0}},
	{"C1/1x1", naive.Layer{N: 4, C: 1, Rows: 6, Cols: 5, K: 2, Width: 1, Pad: 0}},
	{"C2/pad>kernel", naive.Layer{N: 2, C: 2, Rows: 4, Cols: 4, K: 3, Width: 2, Pad: 3}},
	{"C1/K70", naive.Layer{N: 3, C: 1, Rows: 16, Cols: 13, K: 70, Width: 5, Pad: 2}},
	{"C5/K20", naive.Layer{N: 2, C: 5, Rows: 10, Cols: 12, K: 20, Width: 3, Pad: 0}},
}

// config returns the graph.Config of l with a batch of l.N.
func config(l naive.Layer) graph.Config {
	return graph.Config{Kernels: l.K, Width: l.Width, Pad: l.Pad, Channels: l.C, Rows: l.Rows, Cols: l.Cols, Batch: l.N}
}

// Randn returns n values drawn from N(0, scale²).
func Randn(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// CloseTo reports the first element where got and want differ by more than
// tol·(1+|want|) (equal infinities match), or "" when none does.
func CloseTo(got []float32, want []float64, tol float64) string {
	if len(got) != len(want) {
		return fmt.Sprintf(": %d values, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := float64(got[i]), want[i]
		if math.IsInf(w, 0) && g == w {
			continue
		}
		if !(math.Abs(g-w) <= tol*(1+math.Abs(w))) {
			return fmt.Sprintf("[%d] = %v, want %v", i, g, w)
		}
	}
	return ""
}

func dense(v []float32, shape tensor.Shape) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

// run runs step on inputs and checks that it left them unchanged.
func run(t *testing.T, step *graph.Step, in ...*tensor.Dense) []*tensor.Dense {
	t.Helper()
	var orig [][]float32
	for _, v := range in {
		orig = append(orig, slices.Clone(v.Data().([]float32)))
	}
	out, err := step.Run(in...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range in {
		if !slices.Equal(v.Data().([]float32), orig[i]) {
			t.Fatalf("input %d was modified", i)
		}
	}
	return out
}

// sumTol is the tolerance, relative to 1+|sum|, of a float32 sum of terms
// products of N(0,1) values against its float64 value: each addition
// rounds a partial sum of size about √terms by 6e-8, and the roundings of
// terms additions add up like a random walk, to about 6e-8·√terms·√terms
// when the sum cancels; 2e-6·√terms allows for that up to a few thousand
// terms.
func sumTol(terms int) float64 { return 2e-6 * math.Sqrt(float64(terms)) }

// batches are the batch sizes each layer runs: full, a tail, full again
// (the second full run must not see the first).
func batches(n int) []int { return []int{n, max(1, n-1), n} }

func testConv2d(t *testing.T, ops graph.Ops) {
	for _, tc := range Layers {
		t.Run(tc.Name, func(t *testing.T) {
			cfg := config(tc.Layer)
			// The log-prior input serves as the bias.
			step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg)},
				func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
					out, err := ops.Conv2d(in[0], in[1], in[2], cfg.Pad)
					return []*G.Node{out}, err
				})
			if err != nil {
				t.Fatal(err)
			}
			defer step.Close()
			rng := rand.New(rand.NewPCG(1, uint64(cfg.Kernels)))
			for _, n := range batches(cfg.Batch) {
				l := tc.Layer
				l.N = n
				x := Randn(rng, n*cfg.ImageLen(), 1)
				w := Randn(rng, cfg.Kernels*cfg.KernelLen(), 1)
				b := Randn(rng, cfg.Kernels, 3)
				out := run(t, step, dense(x, cfg.ImageShape(n)), dense(w, cfg.KernelShape()), dense(b, tensor.Shape{cfg.Kernels}))
				if !out[0].Shape().Eq(cfg.MapShape(n)) {
					t.Fatalf("n=%d: shape %v, want %v", n, out[0].Shape(), cfg.MapShape(n))
				}
				// float32 sums of C·w·w products of N(0,1) values: rounding
				// grows like the square root of their number.
				if msg := CloseTo(out[0].Data().([]float32), l.Conv2d(x, w, b), sumTol(cfg.KernelLen())); msg != "" {
					t.Errorf("n=%d: conv2d%s", n, msg)
				}
			}
		})
	}
}

func testConv2dFilter(t *testing.T, ops graph.Ops) {
	for _, tc := range Layers {
		t.Run(tc.Name, func(t *testing.T) {
			cfg := config(tc.Layer)
			step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Posterior(cfg)},
				func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
					out, err := ops.Conv2dFilter(in[0], in[1], cfg.Pad)
					return []*G.Node{out}, err
				})
			if err != nil {
				t.Fatal(err)
			}
			defer step.Close()
			rng := rand.New(rand.NewPCG(2, uint64(cfg.Kernels)))
			for _, n := range batches(cfg.Batch) {
				l := tc.Layer
				l.N = n
				x := Randn(rng, n*cfg.ImageLen(), 1)
				f := Randn(rng, n*cfg.MapLen(), 1)
				out := run(t, step, dense(x, cfg.ImageShape(n)), dense(f, cfg.MapShape(n)))
				if !out[0].Shape().Eq(cfg.KernelShape()) {
					t.Fatalf("n=%d: shape %v, want %v", n, out[0].Shape(), cfg.KernelShape())
				}
				if msg := CloseTo(out[0].Data().([]float32), l.Filter(x, f), sumTol(n*cfg.MapLen()/cfg.Kernels)); msg != "" {
					t.Errorf("n=%d: conv2d filter%s", n, msg)
				}
			}
		})
	}
}

func testLogSumExp(t *testing.T, ops graph.Ops) {
	cases := []struct {
		name  string
		shape []int
		axes  []int
		scale float64 // inputs are N(off, scale²)
		off   float64
	}{
		{name: "4d/axes123", shape: []int{3, 4, 5, 6}, axes: []int{1, 2, 3}, scale: 3},
		{name: "4d/axes023", shape: []int{3, 4, 5, 6}, axes: []int{0, 2, 3}, scale: 3},
		{name: "4d/axes23", shape: []int{3, 4, 5, 6}, axes: []int{2, 3}, scale: 3},
		{name: "4d/axis0", shape: []int{7, 2, 3, 1}, axes: []int{0}, scale: 3},
		{name: "+1000", shape: []int{2, 3, 4, 5}, axes: []int{1, 2, 3}, scale: 5, off: 1000},
		{name: "-1000", shape: []int{2, 3, 4, 5}, axes: []int{0, 2, 3}, scale: 5, off: -1000},
		{name: "wide", shape: []int{2, 3, 4, 5}, axes: []int{1, 2, 3}, scale: 400},
		{name: "long rows", shape: []int{2, 3, 13, 13}, axes: []int{2, 3}, scale: 3},
		{name: "2d/all", shape: []int{5, 9}, axes: nil, scale: 10},
		{name: "1d", shape: []int{11}, axes: []int{0}, scale: 10, off: -500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(len(tc.shape))))
			size := 1
			for _, n := range tc.shape {
				size *= n
			}
			v := Randn(rng, size, tc.scale)
			for i := range v {
				v[i] += float32(tc.off)
			}
			got := runLSE(t, ops, v, tc.shape, tc.axes)
			// float32 output: relative rounding of the result only.
			if msg := CloseTo(got, naiveLSE(v, tc.shape, tc.axes), 1e-6); msg != "" {
				t.Errorf("logsumexp%s", msg)
			}
		})
	}
	t.Run("special", func(t *testing.T) {
		inf := float32(math.Inf(1))
		v := []float32{-inf, -inf, 3, -inf, 1, 2, float32(math.NaN()), 0}
		got := runLSE(t, ops, v, []int{4, 2}, []int{1})
		if !math.IsInf(float64(got[0]), -1) || got[1] != 3 || !(math.Abs(float64(got[2])-naive.LogSumExp([]float64{1, 2})) < 1e-6) || !math.IsNaN(float64(got[3])) {
			t.Errorf("logsumexp of [[-inf -inf] [3 -inf] [1 2] [NaN 0]] = %v, want [-inf 3 2.3133 NaN]", got)
		}
	})
}

// runLSE runs ops.LogSumExp on one tensor in a graph of its own.
func runLSE(t *testing.T, ops graph.Ops, v []float32, shape, axes []int) []float32 {
	t.Helper()
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName("x"))
	out, err := ops.LogSumExp(x, axes...)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := G.Let(x, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(slices.Clone(v)))); err != nil {
		t.Fatal(err)
	}
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	switch o := out.Value().Data().(type) {
	case []float32:
		return o
	case float32:
		return []float32{o}
	}
	t.Fatalf("logsumexp value of type %T", out.Value().Data())
	return nil
}

// naiveLSE groups the elements of v by their kept coordinates and reduces
// each group with naive.LogSumExp.
func naiveLSE(v []float32, shape, axes []int) []float64 {
	if axes == nil {
		for i := range shape {
			axes = append(axes, i)
		}
	}
	groups := map[int][]float64{}
	var order []int
	idx := make([]int, len(shape))
	for i := range v {
		rem := i
		for a := len(shape) - 1; a >= 0; a-- {
			idx[a] = rem % shape[a]
			rem /= shape[a]
		}
		key := 0
		for a := range shape {
			if !slices.Contains(axes, a) {
				key = key*shape[a] + idx[a]
			}
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], float64(v[i]))
	}
	slices.Sort(order)
	out := make([]float64, len(order))
	for i, k := range order {
		out[i] = naive.LogSumExp(groups[k])
	}
	return out
}

// testPosterior feeds log joints to Posterior: the naive log joint of
// random images and kernels, and maps where whole kernels lie a thousand
// below the rest (their posterior underflows float32, their log count must
// not).
func testPosterior(t *testing.T, ops graph.Ops) {
	for _, tc := range Layers {
		t.Run(tc.Name, func(t *testing.T) {
			cfg := config(tc.Layer)
			step, err := graph.NewStep(cfg, []graph.Input{graph.Posterior(cfg)},
				func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
					lm, p, lc, err := ops.Posterior(in[0])
					return []*G.Node{lm, p, lc}, err
				})
			if err != nil {
				t.Fatal(err)
			}
			defer step.Close()
			rng := rand.New(rand.NewPCG(4, uint64(cfg.Kernels)))
			uh, uw := cfg.Positions()
			u := uh * uw
			for run_, n := range batches(cfg.Batch) {
				l := tc.Layer
				l.N = n
				x := Randn(rng, n*cfg.ImageLen(), 1)
				theta := Randn(rng, cfg.Kernels*cfg.KernelLen(), 0.5)
				lj := l.LogJoint(x, theta, nil)
				if run_ == 1 {
					for i := 0; i < n; i++ {
						for k := 0; k < cfg.Kernels; k += 2 {
							for p := 0; p < u; p++ {
								lj[(i*cfg.Kernels+k)*u+p] -= 1000
							}
						}
					}
				}
				lj32 := make([]float32, len(lj))
				for i, v := range lj {
					lj32[i] = float32(v)
				}
				out := run(t, step, dense(lj32, cfg.MapShape(n)))
				// The reference, from the same float32 log joint.
				var want naive.EStep
				for i, v := range lj32 {
					lj[i] = float64(v)
				}
				want.LogMarginal = make([]float64, n)
				post := make([]float64, len(lj))
				logCounts := make([]float64, cfg.Kernels)
				for i := 0; i < n; i++ {
					want.LogMarginal[i] = naive.LogSumExp(lj[i*cfg.Kernels*u : (i+1)*cfg.Kernels*u])
					for j := i * cfg.Kernels * u; j < (i+1)*cfg.Kernels*u; j++ {
						post[j] = math.Exp(lj[j] - want.LogMarginal[i])
					}
				}
				for k := range logCounts {
					var all []float64
					for i := 0; i < n; i++ {
						for _, v := range lj[(i*cfg.Kernels+k)*u : (i*cfg.Kernels+k+1)*u] {
							all = append(all, v-want.LogMarginal[i])
						}
					}
					logCounts[k] = naive.LogSumExp(all)
				}
				for _, chk := range []struct {
					name string
					got  []float32
					want []float64
					tol  float64
				}{
					{"log marginal", out[0].Data().([]float32), want.LogMarginal, 1e-6},
					// γ ≤ 1: absolute error about 3e-7 (two float32 exponentials).
					{"posterior", out[1].Data().([]float32), post, 1e-6},
					{"log counts", out[2].Data().([]float32), logCounts, 1e-5},
				} {
					if msg := CloseTo(chk.got, chk.want, chk.tol); msg != "" {
						t.Errorf("n=%d: %s%s", n, chk.name, msg)
					}
				}
			}
		})
	}
}

// testJointPosterior checks the fused convolution and posterior of an op
// set that has one, under each model, against the convolution and the
// model's posterior of float64 loops, on every layer shape.
func testJointPosterior(t *testing.T, ops graph.Ops, jp graph.JointPosterior) {
	for _, model := range []graph.Model{graph.ImageModel, graph.PatchModel} {
		for _, tc := range Layers {
			t.Run(model.String()+"/"+tc.Name, func(t *testing.T) { testJointPosteriorOf(t, ops, jp, model, tc.Layer) })
		}
	}
}

// posteriorOf returns the log marginal (n), posterior and log counts (K)
// of model for the log joint lj (n,K,u), in float64.
func posteriorOf(model graph.Model, lj []float64, n, k, u int) (marg, post, counts []float64) {
	marg = make([]float64, n)
	post = make([]float64, len(lj))
	switch model {
	case graph.ImageModel:
		for i := 0; i < n; i++ {
			marg[i] = naive.LogSumExp(lj[i*k*u : (i+1)*k*u])
			for j := i * k * u; j < (i+1)*k*u; j++ {
				post[j] = math.Exp(lj[j] - marg[i])
			}
		}
	case graph.PatchModel:
		post = naive.KernelSoftmax(lj, n, k, u)
		for i := 0; i < n; i++ {
			for p := 0; p < u; p++ {
				col := make([]float64, k)
				for kk := range col {
					col[kk] = lj[(i*k+kk)*u+p]
				}
				marg[i] += naive.LogSumExp(col)
			}
		}
	}
	counts = make([]float64, k)
	for kk := range counts {
		var all []float64
		for i := 0; i < n; i++ {
			for _, v := range post[(i*k+kk)*u : (i*k+kk+1)*u] {
				all = append(all, math.Log(v))
			}
		}
		counts[kk] = naive.LogSumExp(all)
	}
	return marg, post, counts
}

// fusedRun is one batch of a fused op's check: the layer with its batch,
// the inputs, the op set's own log joint (out[0]) and the fused op's
// outputs (out[1:]), the float64 log joint, and δ, the largest error of
// the op set's Conv2d against it.
type fusedRun struct {
	n       int
	l       naive.Layer
	x       []float32
	out     []*tensor.Dense
	lj      []float64
	delta   float64
	u       int // positions
	kernels int
}

// runFused builds a step whose outputs are ops.Conv2d's log joint and the
// nodes fused gives for the same images, kernels and bias, and calls check
// on a full batch, a short one and a full one of fresh random inputs.
func runFused(t *testing.T, ops graph.Ops, layer naive.Layer, seed uint64, fused func(x, w, b *G.Node, pad int) ([]*G.Node, error), check func(r fusedRun)) {
	cfg := config(layer)
	step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg)},
		func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
			l, err := ops.Conv2d(in[0], in[1], in[2], cfg.Pad)
			if err != nil {
				return nil, err
			}
			out, err := fused(in[0], in[1], in[2], cfg.Pad)
			return append([]*G.Node{l}, out...), err
		})
	if err != nil {
		t.Fatal(err)
	}
	defer step.Close()
	rng := rand.New(rand.NewPCG(seed, uint64(cfg.Kernels)))
	for _, n := range batches(cfg.Batch) {
		l := layer
		l.N = n
		x := Randn(rng, n*cfg.ImageLen(), 1)
		w := Randn(rng, cfg.Kernels*cfg.KernelLen(), 0.5)
		b := Randn(rng, cfg.Kernels, 3)
		out := run(t, step, dense(x, cfg.ImageShape(n)), dense(w, cfg.KernelShape()), dense(b, tensor.Shape{cfg.Kernels}))
		lj := l.Conv2d(x, w, b)
		if msg := CloseTo(out[0].Data().([]float32), lj, sumTol(cfg.KernelLen())); msg != "" {
			t.Fatalf("n=%d: log joint%s", n, msg)
		}
		var delta float64
		for i, v := range out[0].Data().([]float32) {
			delta = max(delta, math.Abs(float64(v)-lj[i]))
		}
		check(fusedRun{n: n, l: l, x: x, out: out, lj: lj, delta: delta, u: cfg.MapLen() / cfg.Kernels, kernels: cfg.Kernels})
	}
}

// closeAll reports, for each output of a fused op, where it is further
// from its float64 value than its tolerance.
func closeAll(t *testing.T, n int, checks []struct {
	name string
	got  []float32
	want []float64
	tol  float64
}) {
	t.Helper()
	for _, chk := range checks {
		if msg := CloseTo(chk.got, chk.want, chk.tol); msg != "" {
			t.Errorf("n=%d: %s%s", n, chk.name, msg)
		}
	}
}

// testJointPosteriorOf compares the fused posterior with model's posterior
// of the float64 log joint, within what the float32 log joint's error
// allows: the error of the op set's own Conv2d, measured in the same run,
// bounds it (an error δ in every L moves log γ by up to 2δ, a log
// marginal summed over u positions by uδ).
func testJointPosteriorOf(t *testing.T, ops graph.Ops, jp graph.JointPosterior, model graph.Model, layer naive.Layer) {
	fused := func(x, w, b *G.Node, pad int) ([]*G.Node, error) {
		lm, p, lc, err := jp.LogJointPosterior(x, w, b, pad, model)
		return []*G.Node{lm, p, lc}, err
	}
	runFused(t, ops, layer, 6, fused, func(r fusedRun) {
		marg, post, counts := posteriorOf(model, r.lj, r.n, r.kernels, r.u)
		closeAll(t, r.n, []struct {
			name string
			got  []float32
			want []float64
			tol  float64
		}{
			{"log marginal", r.out[1].Data().([]float32), marg, 1e-6*float64(r.u) + float64(r.u)*r.delta},
			{"posterior", r.out[2].Data().([]float32), post, 1e-6 + 2*r.delta},
			{"log counts", r.out[3].Data().([]float32), counts, 1e-5 + 2*r.delta},
		})
	})
}

// testExpectedStats checks the fused E-step and M-step numerator of an op
// set that has them, and the log marginal alone, under each model,
// against the convolution, the model's posterior and the filter of float64
// loops, on every layer shape.
func testExpectedStats(t *testing.T, ops graph.Ops, es graph.ExpectedStatser) {
	// Enough kernels that the patch model's positions go in two blocks;
	// and enough images that a shard's go in several blocks of a few
	// images each (the last of them partial), flushed after eight.
	more := []struct {
		Name  string
		Layer naive.Layer
	}{
		{"C2/K600", naive.Layer{N: 2, C: 2, Rows: 12, Cols: 12, K: 600, Width: 3, Pad: 0}},
		{"C3/N21", naive.Layer{N: 21, C: 3, Rows: 6, Cols: 7, K: 9, Width: 3, Pad: 1}},
		{"C1/N83", naive.Layer{N: 83, C: 1, Rows: 5, Cols: 5, K: 4, Width: 2, Pad: 0}},
	}
	for _, model := range []graph.Model{graph.ImageModel, graph.PatchModel} {
		for _, tc := range append(Layers, more...) {
			t.Run(model.String()+"/"+tc.Name, func(t *testing.T) { testExpectedStatsOf(t, ops, es, model, tc.Layer) })
		}
	}
}

// testExpectedStatsOf compares the numerator, log marginal and log counts
// with those of float64 loops, within what the float32 log joint's error
// δ (the op set's own Conv2d's, measured in the same run) allows: γ moves
// by up to 2δ, so each of the numerator's n·u terms by 2δ|x|.
func testExpectedStatsOf(t *testing.T, ops graph.Ops, es graph.ExpectedStatser, model graph.Model, layer naive.Layer) {
	fused := func(x, w, b *G.Node, pad int) ([]*G.Node, error) {
		numer, lm, lc, err := es.ExpectedStats(x, w, b, pad, model)
		if err != nil {
			return nil, err
		}
		lm2, lc2, err := es.LogMarginal(x, w, b, pad, model)
		return []*G.Node{numer, lm, lc, lm2, lc2}, err
	}
	runFused(t, ops, layer, 7, fused, func(r fusedRun) {
		if got, want := r.out[1].Shape(), config(layer).KernelShape(); !got.Eq(want) {
			t.Fatalf("n=%d: numerator of shape %v, want %v", r.n, got, want)
		}
		marg, post, counts := posteriorOf(model, r.lj, r.n, r.kernels, r.u)
		post32 := make([]float32, len(post))
		for i, v := range post {
			post32[i] = float32(v)
		}
		closeAll(t, r.n, []struct {
			name string
			got  []float32
			want []float64
			tol  float64
		}{
			{"numerator", r.out[1].Data().([]float32), r.l.Filter(r.x, post32), (1e-6+2*r.delta)*float64(r.n*r.u)*4 + sumTol(r.n*r.u)},
			{"log marginal", r.out[2].Data().([]float32), marg, 1e-6*float64(r.u) + float64(r.u)*r.delta},
			{"log counts", r.out[3].Data().([]float32), counts, 1e-5 + 2*r.delta},
			{"log marginal alone", r.out[4].Data().([]float32), marg, 1e-6*float64(r.u) + float64(r.u)*r.delta},
			{"log counts alone", r.out[5].Data().([]float32), counts, 1e-5 + 2*r.delta},
		})
	})
}

func testPool(t *testing.T, ops graph.Ops) {
	maps := []struct {
		name   string
		uh, uw int
		grids  []int
	}{
		{"7x9", 7, 9, []int{1, 2, 3, 4, 7}},
		{"13x13", 13, 13, []int{1, 2, 3, 5}},
		{"1x6", 1, 6, []int{1}},
	}
	for _, m := range maps {
		for _, g := range m.grids {
			for _, pl := range []struct {
				reduce        graph.Reduction
				pyramid, root bool
			}{{graph.LogSumExpCells, false, false}, {graph.MaxCells, false, false}, {graph.MeanCells, false, false}, {graph.LogSumExpCells, true, false}, {graph.MaxCells, true, false},
				{graph.MeanCells, false, true}, {graph.MeanCells, true, true}} {
				reduce := pl.reduce
				p := graph.Pooling{Reduce: reduce, Grid: g, Pyramid: pl.pyramid, Posterior: pl.root, Root: pl.root}
				t.Run(m.name+"/"+p.Name(), func(t *testing.T) {
					// Maps with N(0, 3²) values; in the second run one
					// position of each map stands 300 above the rest, so
					// the other cells underflow against the map's maximum.
					cfg := graph.Config{Kernels: 3, Width: 1, Channels: 1, Rows: m.uh, Cols: m.uw, Batch: 2}
					step, err := graph.NewStep(cfg, []graph.Input{graph.Posterior(cfg)},
						func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
							out, err := ops.Pool(in[0], p)
							return []*G.Node{out}, err
						})
					if err != nil {
						t.Fatal(err)
					}
					defer step.Close()
					rng := rand.New(rand.NewPCG(5, uint64(g)))
					for r := 0; r < 2; r++ {
						v := Randn(rng, 2*cfg.MapLen(), 3)
						if p.Root {
							// A square root pools shares, never below 0.
							for i, x := range v {
								v[i] = float32(math.Abs(float64(x)))
							}
						}
						if r == 1 {
							for i := 0; i < len(v); i += m.uh * m.uw {
								v[i+rng.IntN(m.uh*m.uw)] += 300
							}
						}
						out := run(t, step, dense(v, cfg.MapShape(2)))
						v64 := make([]float64, len(v))
						for i, x := range v {
							v64[i] = float64(x)
						}
						want, shape := Pooled(v64, m.uh, m.uw, p), tensor.Shape{2, 3, g, g}
						if p.Pyramid {
							shape = tensor.Shape{2, 3, 1, g * (g + 1) * (2*g + 1) / 6}
						}
						if !out[0].Shape().Eq(shape) {
							t.Fatalf("shape %v, want %v", out[0].Shape(), shape)
						}
						if msg := CloseTo(out[0].Data().([]float32), want, 1e-6); msg != "" {
							t.Errorf("run %d: %s%s", r, p.Name(), msg)
						}
					}
				})
			}
		}
	}
	t.Run("empty cells", func(t *testing.T) {
		g := G.NewGraph()
		x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 3, 5), G.WithName("x"))
		if _, err := ops.Pool(x, graph.Pooling{Grid: 4}); err == nil {
			t.Error("a 4×4 grid over 3×5 positions was accepted")
		}
	})
	t.Run("root", func(t *testing.T) {
		for _, p := range []graph.Pooling{
			{Reduce: graph.MeanCells, Grid: 2, Root: true},                 // of a log joint
			{Reduce: graph.MaxCells, Grid: 2, Posterior: true, Root: true}, // of a maximum
			{Reduce: graph.LogSumExpCells, Grid: 1, Posterior: true, Root: true},
		} {
			g := G.NewGraph()
			x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 3, 5), G.WithName("x"))
			if _, err := ops.Pool(x, p); err == nil {
				t.Errorf("%+v was accepted", p)
			}
		}
	})
}

// Pooled returns the float64 reference of pooling p applied to maps of
// uh×uw positions (what graph.Pool computes: it pools what it is given, so
// for a Posterior pooling maps must already be the posterior): each map's
// cells, level by level for a pyramid, square-rooted with p.Root.
func Pooled(maps []float64, uh, uw int, p graph.Pooling) []float64 {
	var out []float64
	if p.Pyramid {
		out = naive.Pyramid(maps, uh, uw, p.Grid, ReduceName(p.Reduce))
	} else {
		out = naive.Pool(maps, uh, uw, p.Grid, ReduceName(p.Reduce))
	}
	if p.Root {
		for i, v := range out {
			out[i] = math.Sqrt(v)
		}
	}
	return out
}

// ReduceName is the name internal/naive gives a graph.Reduction.
func ReduceName(r graph.Reduction) string {
	return map[graph.Reduction]string{graph.LogSumExpCells: "lse", graph.MaxCells: "max", graph.MeanCells: "mean"}[r]
}

// testTypes builds each op on float64 nodes: the op must refuse when the
// graph is built, not fail when it runs.
func testTypes(t *testing.T, ops graph.Ops) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float64, 4, G.WithShape(2, 1, 5, 5), G.WithName("x"))
	w := G.NewTensor(g, tensor.Float64, 4, G.WithShape(3, 1, 3, 3), G.WithName("w"))
	b := G.NewTensor(g, tensor.Float64, 1, G.WithShape(3), G.WithName("b"))
	f := G.NewTensor(g, tensor.Float64, 4, G.WithShape(2, 3, 3, 3), G.WithName("f"))
	if _, err := ops.Conv2d(x, w, b, 0); err == nil {
		t.Error("Conv2d accepted float64 nodes")
	}
	if _, err := ops.Conv2dFilter(x, f, 0); err == nil {
		t.Error("Conv2dFilter accepted float64 nodes")
	}
	if _, _, _, err := ops.Posterior(f); err == nil {
		t.Error("Posterior accepted float64 nodes")
	}
	if _, err := ops.Pool(f, graph.ImageWide); err == nil {
		t.Error("Pool accepted float64 nodes")
	}
}
