package graph_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// mapStep compiles a step whose one input is maps (n,K,H,W) and whose one
// output is f of them.
func mapStep(t *testing.T, k, h, w, n int, f func(*G.Node) (*G.Node, error)) *graph.Step {
	t.Helper()
	cfg := graph.Config{Kernels: k, Width: 1, Channels: 1, Rows: h, Cols: w, Batch: n}
	step, err := graph.NewStep(cfg, []graph.Input{graph.Posterior(cfg)}, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
		out, err := f(in[0])
		return []*G.Node{out}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return step
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestKernelPosterior compares the softmax over kernels with float64
// loops, on log joints of values near ±1000 and with kernels far apart.
func TestKernelPosterior(t *testing.T) {
	const n, k, h, w = 3, 7, 5, 6
	step := mapStep(t, k, h, w, n, graph.KernelPosterior)
	defer step.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, off := range []float64{0, 1000, -1000} {
		v := graphtest.Randn(rng, n*k*h*w, 20)
		for i := range v {
			v[i] += float32(off)
		}
		out, err := step.Run(tensor.New(tensor.WithShape(n, k, h, w), tensor.WithBacking(v)))
		if err != nil {
			t.Fatal(err)
		}
		// Two float32 exponentials and a division: 1e-6 of values ≤ 1.
		if msg := graphtest.CloseTo(out[0].Data().([]float32), naive.KernelSoftmax(to64(v), n, k, h*w), 1e-6); msg != "" {
			t.Errorf("offset %v: kernel posterior%s", off, msg)
		}
	}
}

// TestPatchPosterior compares the patch model's posterior, log marginal
// and log counts with float64 loops, on log joints near ±1000.
func TestPatchPosterior(t *testing.T) {
	const n, k, h, w = 3, 7, 5, 6
	cfg := graph.Config{Kernels: k, Width: 1, Channels: 1, Rows: h, Cols: w, Batch: n}
	step, err := graph.NewStep(cfg, []graph.Input{graph.Posterior(cfg)}, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
		logMarg, post, logCounts, err := graph.PatchPosterior(in[0])
		return []*G.Node{logMarg, post, logCounts}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer step.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, off := range []float64{0, 1000, -1000} {
		v := graphtest.Randn(rng, n*k*h*w, 20)
		for i := range v {
			v[i] += float32(off)
		}
		out, err := step.Run(tensor.New(tensor.WithShape(n, k, h, w), tensor.WithBacking(v)))
		if err != nil {
			t.Fatal(err)
		}
		l := to64(v)
		post := naive.KernelSoftmax(l, n, k, h*w)
		marg := make([]float64, n)
		counts := make([]float64, k)
		for i := 0; i < n; i++ {
			for p := 0; p < h*w; p++ {
				col := make([]float64, k)
				for kk := range col {
					col[kk] = l[(i*k+kk)*h*w+p]
				}
				marg[i] += naive.LogSumExp(col)
			}
			for kk := 0; kk < k; kk++ {
				for p := 0; p < h*w; p++ {
					counts[kk] += post[(i*k+kk)*h*w+p]
				}
			}
		}
		for kk := range counts {
			counts[kk] = math.Log(counts[kk])
		}
		// ℓ: 30 float32 log-sum-exps of values near ±1000 summed in float64.
		for _, chk := range []struct {
			name string
			got  []float32
			want []float64
			tol  float64
		}{{"log marginal", out[0].Data().([]float32), marg, 1e-6}, {"posterior", out[1].Data().([]float32), post, 1e-6}, {"log counts", out[2].Data().([]float32), counts, 1e-5}} {
			if msg := graphtest.CloseTo(chk.got, chk.want, chk.tol); msg != "" {
				t.Errorf("offset %v: %s%s", off, chk.name, msg)
			}
		}
	}
}

// TestLocalPool compares each reduction over windows that do and do not
// divide the maps with float64 loops.
func TestLocalPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, size := range []int{1, 2, 3, 4} {
		for _, reduce := range []graph.Reduction{graph.MeanCells, graph.MaxCells, graph.LogSumExpCells} {
			t.Run(fmt.Sprintf("%d/%s", size, graphtest.ReduceName(reduce)), func(t *testing.T) {
				const n, k, h, w = 2, 3, 7, 9
				step := mapStep(t, k, h, w, n, func(x *G.Node) (*G.Node, error) { return graph.LocalPool(x, size, reduce) })
				defer step.Close()
				v := graphtest.Randn(rng, n*k*h*w, 3)
				out, err := step.Run(tensor.New(tensor.WithShape(n, k, h, w), tensor.WithBacking(v)))
				if err != nil {
					t.Fatal(err)
				}
				if want := (tensor.Shape{n, k, graph.OutSize(h, size), graph.OutSize(w, size)}); !out[0].Shape().Eq(want) {
					t.Fatalf("shape %v, want %v", out[0].Shape(), want)
				}
				if msg := graphtest.CloseTo(out[0].Data().([]float32), naive.LocalPool(to64(v), h, w, size, graphtest.ReduceName(reduce)), 1e-6); msg != "" {
					t.Errorf("local pool%s", msg)
				}
				// A NaN anywhere in a window, here its last pixel, makes its
				// cell NaN (and no other).
				v[(size-1)*w+size-1] = float32(math.NaN())
				out, err = step.Run(tensor.New(tensor.WithShape(n, k, h, w), tensor.WithBacking(v)))
				if err != nil {
					t.Fatal(err)
				}
				if got := out[0].Data().([]float32); got[0] == got[0] || got[1] != got[1] {
					t.Errorf("a NaN in the first window: cells %v, %v; want NaN, then a number", got[0], got[1])
				}
			})
		}
	}
}

// TestSqrt compares the square root with float64's on random values,
// zeros and a negative one (NaN).
func TestSqrt(t *testing.T) {
	const n, k, h, w = 3, 4, 5, 6
	step := mapStep(t, k, h, w, n, graph.Sqrt)
	defer step.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	v := make([]float32, n*k*h*w)
	for i := range v {
		v[i] = float32(rng.ExpFloat64())
	}
	v[0], v[1], v[2] = 0, -1, 1e-30
	out, err := step.Run(tensor.New(tensor.WithShape(n, k, h, w), tensor.WithBacking(v)))
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Data().([]float32)
	if !math.IsNaN(float64(got[1])) {
		t.Errorf("√-1 = %v, want NaN", got[1])
	}
	got[1], v[1] = 0, 0
	want := make([]float64, len(v))
	for i, x := range v {
		want[i] = math.Sqrt(float64(x))
	}
	if msg := graphtest.CloseTo(got, want, 1e-7); msg != "" {
		t.Errorf("sqrt%s", msg)
	}
}

// TestTransformRootNeedsPosterior checks that a root of the log joint is
// refused (only a posterior has one).
func TestTransformRootNeedsPosterior(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 3, 3), G.WithName("x"))
	if _, err := (graph.Transform{Root: true, Pool: 2, Reduce: graph.MaxCells}).Apply(x); err == nil {
		t.Error("a root of the log joint: no error")
	}
}

// TestChannelAffine maps each channel by its own scale and shift.
func TestChannelAffine(t *testing.T) {
	const n, c, h, w = 2, 3, 4, 5
	cfg := graph.Config{Kernels: c, Width: 1, Channels: c, Rows: h, Cols: w, Batch: n}
	step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.LogPrior(cfg).Named("scale"), graph.LogPrior(cfg).Named("shift")},
		func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
			out, err := graph.ChannelAffine(in[0], in[1], in[2])
			return []*G.Node{out}, err
		})
	if err != nil {
		t.Fatal(err)
	}
	defer step.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	x := graphtest.Randn(rng, n*c*h*w, 2)
	scale, shift := []float32{2, -0.5, 0}, []float32{1, 3, -7}
	out, err := step.Run(tensor.New(tensor.WithShape(n, c, h, w), tensor.WithBacking(x)),
		tensor.New(tensor.WithShape(c), tensor.WithBacking(scale)), tensor.New(tensor.WithShape(c), tensor.WithBacking(shift)))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, len(x))
	for i, v := range x {
		ch := i / (h * w) % c
		want[i] = float64(v)*float64(scale[ch]) + float64(shift[ch])
	}
	if msg := graphtest.CloseTo(out[0].Data().([]float32), want, 1e-7); msg != "" {
		t.Errorf("channel affine%s", msg)
	}
}

func TestParseTransform(t *testing.T) {
	for _, tc := range []struct {
		name string
		want graph.Transform
		ok   bool
	}{
		{"joint", graph.Transform{}, true},
		{"post", graph.Transform{Posterior: true}, true},
		{"post+max2", graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MaxCells}, true},
		{"joint+lse3", graph.Transform{Pool: 3, Reduce: graph.LogSumExpCells}, true},
		{"post+mean2", graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MeanCells}, true},
		{"post-root", graph.Transform{Posterior: true, Root: true}, true},
		{"post-root+max2", graph.Transform{Posterior: true, Root: true, Pool: 2, Reduce: graph.MaxCells}, true},
		{"joint-root", graph.Transform{}, false},
		{"post-root-mean2", graph.Transform{}, false},
		{"post+max1", graph.Transform{}, false}, // named post
		{"post+max02", graph.Transform{}, false},
		{"post+sum2", graph.Transform{}, false},
		{"posterior", graph.Transform{}, false},
		{"post+", graph.Transform{}, false},
		{"", graph.Transform{}, false},
	} {
		got, err := graph.ParseTransform(tc.name)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTransform(%q) = %v, %v", tc.name, got, err)
		}
		if tc.ok && got.String() != tc.name {
			t.Errorf("ParseTransform(%q).String() = %q", tc.name, got.String())
		}
	}
}
