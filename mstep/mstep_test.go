package mstep_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"
	"calm/mstep"

	"gorgonia.org/tensor"
)

var randn = graphtest.Randn

// TestEpoch runs the numerator graph on the batches of a small epoch (the
// last one short), accumulates the statistics and updates θ, and compares
// S, b, LL, θ and the mixing weights with direct float64 loops over the
// whole epoch, for every op set. The epoch has more images than the fast
// op set sums in float32 before it flushes to float64.
func TestEpoch(t *testing.T) {
	cases := []struct {
		name   string
		cfg    graph.Config
		images int
	}{
		{name: "C1/pad2", cfg: graph.Config{Kernels: 5, Width: 5, Pad: 2, Channels: 1, Rows: 8, Cols: 8, Batch: 4}, images: 10},
		{name: "C3/pad0", cfg: graph.Config{Kernels: 4, Width: 3, Pad: 0, Channels: 3, Rows: 7, Cols: 9, Batch: 3}, images: 7},
		{name: "C1/many", cfg: graph.Config{Kernels: 3, Width: 3, Pad: 1, Channels: 1, Rows: 6, Cols: 6, Batch: 40}, images: 90},
	}
	for _, ops := range graph.OpSets() {
		for _, tc := range cases {
			t.Run(ops.Name()+"/"+tc.name, func(t *testing.T) {
				c := tc.cfg
				g, err := mstep.New(c, ops)
				if err != nil {
					t.Fatal(err)
				}
				uh, uw := c.Positions()
				rng := rand.New(rand.NewPCG(5, uint64(c.Kernels)))
				xv := randn(rng, tc.images*c.ImageLen(), 1)
				tv := randn(rng, c.Kernels*c.KernelLen(), 0.5)
				all := naive.Layer{N: tc.images, C: c.Channels, Rows: c.Rows, Cols: c.Cols, K: c.Kernels, Width: c.Width, Pad: c.Pad}
				e := all.E(xv, tv, nil)
				post := make([]float32, len(e.LogPosterior))
				for i, v := range e.LogPosterior {
					post[i] = float32(math.Exp(v))
				}
				stats := mstep.NewStats(c)
				per := c.Kernels * uh * uw
				for start := 0; start < tc.images; start += c.Batch {
					n := min(c.Batch, tc.images-start)
					x := tensor.New(tensor.WithShape(c.ImageShape(n)...),
						tensor.WithBacking(xv[start*c.ImageLen():(start+n)*c.ImageLen()]))
					p := tensor.New(tensor.WithShape(c.MapShape(n)...), tensor.WithBacking(post[start*per:(start+n)*per]))
					s, err := g.Run(x, p)
					if err != nil {
						t.Fatal(err)
					}
					// Batch log counts and loglik from the float64 reference:
					// this test is about S and the accumulation.
					b := make([]float32, c.Kernels)
					for k := range b {
						var v []float64
						for i := start; i < start+n; i++ {
							v = append(v, e.LogPosterior[(i*c.Kernels+k)*uh*uw:(i*c.Kernels+k+1)*uh*uw]...)
						}
						b[k] = float32(naive.LogSumExp(v))
					}
					var ll float64
					for _, l := range e.LogMarginal[start : start+n] {
						ll += l
					}
					if err := stats.Add(s.Data().([]float32), b, ll, n); err != nil {
						t.Fatal(err)
					}
				}
				wantS := all.Filter(xv, post)
				for i, w := range wantS {
					if g := stats.Numerator[i]; math.Abs(g-w) > 1e-5*(1+math.Abs(w)) {
						t.Fatalf("S[%d] = %v, want %v", i, g, w)
					}
				}
				for k, w := range e.LogCounts {
					if g := stats.LogCounts[k]; math.Abs(g-w) > 1e-5*(1+math.Abs(w)) {
						t.Errorf("b[%d] = %v, want %v", k, g, w)
					}
				}
				if stats.Images != tc.images {
					t.Errorf("images = %d, want %d", stats.Images, tc.images)
				}
				theta, logPrior, err := mstep.Update(c, stats)
				if err != nil {
					t.Fatal(err)
				}
				wantTheta, wantPrior := naive.Update(wantS, e.LogCounts)
				if msg := graphtest.CloseTo(theta.Data().([]float32), wantTheta, 1e-5); msg != "" {
					t.Errorf("θ%s", msg)
				}
				if msg := graphtest.CloseTo(logPrior.Data().([]float32), wantPrior, 1e-5); msg != "" {
					t.Errorf("log π%s", msg)
				}
			})
		}
	}
}

func TestUpdateNonFinite(t *testing.T) {
	c := graph.Config{Kernels: 3, Width: 2, Channels: 1, Rows: 4, Cols: 4, Batch: 1}
	s := mstep.NewStats(c)
	for k := range s.LogCounts {
		s.LogCounts[k] = 0
	}
	s.Numerator[2*c.KernelLen()+1] = math.NaN()
	_, _, err := mstep.Update(c, s)
	var nf *mstep.NonFiniteError
	if !errors.As(err, &nf) || nf.Kernel != 2 || nf.What != "numerator" {
		t.Fatalf("Update with NaN in kernel 2 = %v, want a *NonFiniteError for kernel 2", err)
	}
}
