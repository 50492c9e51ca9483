package mstep_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"calm/graph"
	"calm/internal/naive"
	"calm/mstep"

	"gorgonia.org/tensor"
)

var opSets = []graph.Ops{graph.Stock{}, graph.Fast{}}

func randn(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// TestEpoch runs the numerator graph on the batches of a small epoch (the
// last one short), accumulates the statistics and updates θ, and compares
// S, b, LL and θ with direct float64 loops over the whole epoch.
func TestEpoch(t *testing.T) {
	cases := []struct {
		name   string
		cfg    graph.Config
		images int
	}{
		{name: "C1/pad2", cfg: graph.Config{Kernels: 5, Channels: 1, Height: 8, Width: 8, Size: 5, Pad: 2, Batch: 4}, images: 10},
		{name: "C3/pad0", cfg: graph.Config{Kernels: 4, Channels: 3, Height: 7, Width: 9, Size: 3, Pad: 0, Batch: 3}, images: 7},
	}
	for _, ops := range opSets {
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
				all := naive.Layer{N: tc.images, C: c.Channels, H: c.Height, W: c.Width, K: c.Kernels, S: c.Size, P: c.Pad}
				e := all.E(xv, tv)
				post := make([]float32, len(e.LogPosterior))
				for i, v := range e.LogPosterior {
					post[i] = float32(math.Exp(v))
				}
				stats := mstep.NewStats(c)
				per := c.Kernels * uh * uw
				for start := 0; start < tc.images; start += c.Batch {
					n := min(c.Batch, tc.images-start)
					x := tensor.New(tensor.WithShape(n, c.Channels, c.Height, c.Width),
						tensor.WithBacking(xv[start*c.ImageLen():(start+n)*c.ImageLen()]))
					p := tensor.New(tensor.WithShape(n, c.Kernels, uh, uw), tensor.WithBacking(post[start*per:(start+n)*per]))
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
				theta, err := mstep.Update(c, stats)
				if err != nil {
					t.Fatal(err)
				}
				// θ_k = S_k / ((T·N_k + 1)/(T + 1)), with T = Σ N_k = images.
				d := c.KernelLen()
				T := float64(tc.images)
				for i, got := range theta.Data().([]float32) {
					nk := math.Exp(e.LogCounts[i/d])
					want := wantS[i] / ((T*nk + 1) / (T + 1))
					if math.Abs(float64(got)-want) > 1e-5*(1+math.Abs(want)) {
						t.Fatalf("θ[%d] = %v, want %v", i, got, want)
					}
				}
			})
		}
	}
}

func TestUpdateNonFinite(t *testing.T) {
	c := graph.Config{Kernels: 3, Channels: 1, Height: 4, Width: 4, Size: 2, Batch: 1}
	s := mstep.NewStats(c)
	for k := range s.LogCounts {
		s.LogCounts[k] = 0
	}
	s.Numerator[2*c.KernelLen()+1] = math.NaN()
	_, err := mstep.Update(c, s)
	var nf *mstep.NonFiniteError
	if !errors.As(err, &nf) || nf.Kernel != 2 || nf.What != "numerator" {
		t.Fatalf("Update with NaN in kernel 2 = %v, want a *NonFiniteError for kernel 2", err)
	}
}
