package estep_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"calm/estep"
	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	"gorgonia.org/tensor"
)

func dense(v []float32, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

// TestStack carries random images through two layers (the second with
// K₁ = 5 channels) with each transform, and compares the next layer's
// input and the pooled features of both layers (each pooled the same way,
// and each its own way) with float64 loops.
func TestStack(t *testing.T) {
	for _, tr := range []graph.Transform{
		{Posterior: true, Pool: 2, Reduce: graph.MeanCells},
		{Posterior: false, Pool: 3, Reduce: graph.LogSumExpCells},
		{Posterior: true},
		{Posterior: true, Root: true, Pool: 2, Reduce: graph.MeanCells},
	} {
		for _, ops := range graph.OpSets() {
			t.Run(tr.String()+"/"+ops.Name(), func(t *testing.T) { testStack(t, tr, ops) })
		}
	}
}

// testStack is TestStack for one transform and op set (whose posterior,
// with graph.Fast, comes from the fused convolution).
func testStack(t *testing.T, tr graph.Transform, ops graph.Ops) {
	const n = 3
	c1 := graph.Config{Kernels: 5, Width: 3, Pad: 1, Channels: 1, Rows: 9, Cols: 8, Batch: n}
	c2 := tr.Next(c1, 4, 2, 0)
	stages := []estep.Stage{{Config: c1, Transform: tr}, {Config: c2, Transform: graph.Transform{Pool: 2, Reduce: graph.MaxCells}}}
	rng := rand.New(rand.NewPCG(7, 7))
	x := graphtest.Randn(rng, n*c1.ImageLen(), 1)
	th1 := graphtest.Randn(rng, c1.Kernels*c1.KernelLen(), 0.5)
	th2 := graphtest.Randn(rng, c2.Kernels*c2.KernelLen(), 0.5)
	prior1 := []float32{-1, -2, -1.5, -2, -1.2}
	scale1, shift1 := []float32{2, 0.5, 1, 3, 1.5}, []float32{-1, 0, 0.5, -2, 1}
	scale2, shift2 := []float32{1, 2, 3, 4}, []float32{0, 1, 0, -1}
	params := []estep.StageParams{
		{Theta: dense(th1, c1.KernelShape()...), LogPrior: dense(prior1, 5), Scale: dense(scale1, 5), Shift: dense(shift1, 5)},
		{Theta: dense(th2, c2.KernelShape()...), Scale: dense(scale2, 4), Shift: dense(shift2, 4)},
	}
	// The reference: layer 1's log joint, transformed and standardised
	// into layer 2's input, in float64 but for the float32 input that
	// layer 2 is given.
	l1 := naive.Layer{N: n, C: 1, Rows: c1.Rows, Cols: c1.Cols, K: 5, Width: 3, Pad: 1}
	prior64 := make([]float64, 5)
	for k, v := range prior1 {
		prior64[k] = float64(v)
	}
	lj1 := l1.LogJoint(x, th1, prior64)
	uh, uw := c1.Positions()
	t1 := lj1
	if tr.Posterior {
		t1 = naive.KernelSoftmax(t1, n, 5, uh*uw)
	}
	if tr.Pool > 1 {
		t1 = naive.LocalPool(t1, uh, uw, tr.Pool, graphtest.ReduceName(tr.Reduce))
	}
	if tr.Root {
		for i, v := range t1 {
			t1[i] = math.Sqrt(v)
		}
	}
	x2 := make([]float64, len(t1))
	x2f := make([]float32, len(t1))
	per := c2.Rows * c2.Cols
	for i, v := range t1 {
		ch := i / per % 5
		x2[i] = v*float64(scale1[ch]) + float64(shift1[ch])
		x2f[i] = float32(x2[i])
	}
	maps, err := estep.NewMaps(stages[:1], ops, true)
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	got := make([]float32, n*maps.Len())
	if err := maps.RunInto(got, dense(x, c1.ImageShape(n)...), params); err != nil {
		t.Fatal(err)
	}
	// The transformed maps of float32 log joints (1e-5), scaled by up
	// to 3.
	if msg := graphtest.CloseTo(got, x2, 5e-5); msg != "" {
		t.Errorf("layer 2's input%s", msg)
	}
	l2 := naive.Layer{N: n, C: 5, Rows: c2.Rows, Cols: c2.Cols, K: 4, Width: 2, Pad: 0}
	lj2 := l2.LogJoint(x2f, th2, nil)
	u2h, u2w := c2.Positions()
	lse2 := graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 2}
	rootPyramid := graph.Pooling{Reduce: graph.MeanCells, Grid: 2, Pyramid: true, Posterior: true, Root: true}
	for _, pools := range [][2]graph.Pooling{{lse2, lse2}, {rootPyramid, lse2}} {
		feats, err := estep.NewStackFeatures(stages, ops, []estep.LayerFeatures{{Layer: 0, Pooling: pools[0]}, {Layer: 1, Pooling: pools[1]}})
		if err != nil {
			t.Fatal(err)
		}
		f := make([]float32, n*feats.Len())
		err = feats.RunInto(f, dense(x, c1.ImageShape(n)...), params)
		feats.Close()
		if err != nil {
			t.Fatal(err)
		}
		m1 := lj1
		if pools[0].Posterior {
			m1 = naive.KernelSoftmax(lj1, n, 5, uh*uw)
		}
		p1, p2 := graphtest.Pooled(m1, uh, uw, pools[0]), graphtest.Pooled(lj2, u2h, u2w, pools[1])
		d1, d2 := len(p1)/n, len(p2)/n
		var want []float64
		for i := 0; i < n; i++ {
			want = append(want, p1[i*d1:(i+1)*d1]...)
			want = append(want, p2[i*d2:(i+1)*d2]...)
		}
		// Layer 2's log joint sums 5·2·2 products of inputs up to ~5.
		if msg := graphtest.CloseTo(f, want, 1e-4); msg != "" {
			t.Errorf("features of layer 1 by %s, layer 2 by %s%s", pools[0].Name(), pools[1].Name(), msg)
		}
	}
}
