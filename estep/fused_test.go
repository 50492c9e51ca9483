package estep_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"calm/estep"
	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	"gorgonia.org/tensor"
)

// TestFused checks the fused E-step and M-step numerator against float64
// loops (the log joint at inverse temperature β with log weights, the
// model's posterior, and the filter S = Σ γ·patches), for both models, a
// full batch and a short one.
func TestFused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  graph.Config
	}{
		{"C1/pad2", graph.Config{Kernels: 6, Width: 5, Pad: 2, Channels: 1, Rows: 9, Cols: 7, Batch: 4}},
		{"C3/pad1", graph.Config{Kernels: 5, Width: 4, Pad: 1, Channels: 3, Rows: 7, Cols: 9, Batch: 3}},
		{"C2/K700", graph.Config{Kernels: 700, Width: 3, Pad: 0, Channels: 2, Rows: 12, Cols: 12, Batch: 2}},
	} {
		for _, model := range []graph.Model{graph.ImageModel, graph.PatchModel} {
			t.Run(tc.name+"/"+model.String(), func(t *testing.T) {
				c := tc.cfg
				c.Model = model
				f, err := estep.NewFused(c, graph.Fast{})
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				rng := rand.New(rand.NewPCG(9, uint64(c.Kernels)))
				for _, n := range []int{c.Batch, 1} {
					l := naive.Layer{N: n, C: c.Channels, Rows: c.Rows, Cols: c.Cols, K: c.Kernels, Width: c.Width, Pad: c.Pad}
					xv := graphtest.Randn(rng, n*c.ImageLen(), 1)
					tv := graphtest.Randn(rng, c.Kernels*c.KernelLen(), 0.5)
					w := graphtest.Randn(rng, c.Kernels, 1)
					prior64 := make([]float64, c.Kernels)
					for k, v := range w {
						prior64[k] = float64(v)
					}
					const beta = 0.6
					x := tensor.New(tensor.WithShape(c.ImageShape(n)...), tensor.WithBacking(xv))
					theta := tensor.New(tensor.WithShape(c.KernelShape()...), tensor.WithBacking(tv))
					prior := tensor.New(tensor.WithShape(c.Kernels), tensor.WithBacking(w))
					r, err := f.RunTempered(x, theta, prior, beta)
					if err != nil {
						t.Fatal(err)
					}
					uh, uw := c.Positions()
					joint := l.LogJoint(xv, tv, nil)
					for i := range joint {
						joint[i] = beta*joint[i] + prior64[i/(uh*uw)%c.Kernels]
					}
					want := l.EFrom(joint)
					if model == graph.PatchModel {
						want = l.EPatchFrom(joint)
					}
					post := make([]float32, len(want.LogPosterior))
					var ll float64
					for i, v := range want.LogPosterior {
						post[i] = float32(math.Exp(v))
					}
					for _, v := range want.LogMarginal {
						ll += v
					}
					numer := l.Filter(xv, post)
					u := uh * uw
					for _, chk := range []struct {
						name string
						got  []float32
						want []float64
						tol  float64
					}{
						// L is a float32 sum of C·w·w products (1e-5 relative);
						// S sums n·u terms, each γ·x moved by as much.
						{"log marginal", r.LogMarginal, want.LogMarginal, 1e-5 * float64(u)},
						{"log counts", r.LogCounts, want.LogCounts, 1e-4},
						{"numerator", r.Numer, numer, 1e-4 * float64(n*u)},
					} {
						if msg := graphtest.CloseTo(chk.got, chk.want, chk.tol); msg != "" {
							t.Errorf("n=%d: %s%s", n, chk.name, msg)
						}
					}
					if math.Abs(r.LogLik-ll) > 1e-5*float64(u)*(1+math.Abs(ll)) {
						t.Errorf("n=%d: loglik %v, want %v", n, r.LogLik, ll)
					}
					if r.Posterior != nil {
						t.Errorf("n=%d: the fused graph gave a posterior", n)
					}
					alone, err := f.LogLikTempered(x, theta, prior, beta)
					if err != nil {
						t.Fatal(err)
					}
					if msg := graphtest.CloseTo(alone.LogMarginal, want.LogMarginal, 1e-5*float64(u)); msg != "" {
						t.Errorf("n=%d: log marginal alone%s", n, msg)
					}
					if alone.LogLik != r.LogLik {
						t.Errorf("n=%d: LL alone %v, with the numerator %v", n, alone.LogLik, r.LogLik)
					}
				}
			})
		}
	}
}

// TestFusedRefuses checks that what the fused graph cannot compute is
// refused with graph.ErrNotFused, so that EM falls back on the two graphs.
func TestFusedRefuses(t *testing.T) {
	c := graph.Config{Kernels: 3, Width: 3, Channels: 1, Rows: 6, Cols: 6, Batch: 2, Model: graph.PatchModel}
	kv := c
	kv.KernelVariances = true
	for _, tc := range []struct {
		cfg graph.Config
		ops graph.Ops
	}{{c, graph.Gorgonia{}}, {c, graph.Unfused{Ops: graph.Fast{}}}, {kv, graph.Fast{}}} {
		name := fmt.Sprintf("%s/kernel-variances=%v", tc.ops.Name(), tc.cfg.KernelVariances)
		if _, err := estep.NewFused(tc.cfg, tc.ops); !errors.Is(err, graph.ErrNotFused) {
			t.Errorf("%s: NewFused: %v, want an error wrapping ErrNotFused", name, err)
		}
	}
}
