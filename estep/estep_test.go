package estep_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/estep"
	"calm/gemm"
	"calm/graph"
	"calm/internal/naive"

	"gorgonia.org/tensor"
)

var opSets = func() []graph.Ops {
	ops := []graph.Ops{graph.Stock{}}
	for _, k := range gemm.Kernels() {
		ops = append(ops, graph.Fast{Kernel: k})
	}
	return ops
}()

func randn(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

func closeTo(got []float32, want []float64, tol float64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("len %d, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := float64(got[i]), want[i]
		if !(math.Abs(g-w) <= tol*(1+math.Abs(w))) {
			return fmt.Sprintf("[%d] = %v, want %v", i, g, w)
		}
	}
	return ""
}

func exp(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Exp(x)
	}
	return out
}

// TestEStep compares every output of the E-step with direct float64 loops,
// on a full batch and then on a tail batch through the same Graph.
func TestEStep(t *testing.T) {
	cases := []struct {
		name string
		cfg  graph.Config
		tail int
	}{
		{name: "C1/pad0", cfg: graph.Config{Kernels: 4, Channels: 1, Height: 8, Width: 8, Size: 3, Pad: 0, Batch: 5}, tail: 2},
		{name: "C1/pad2", cfg: graph.Config{Kernels: 6, Channels: 1, Height: 9, Width: 7, Size: 5, Pad: 2, Batch: 4}, tail: 3},
		{name: "C3/pad1", cfg: graph.Config{Kernels: 5, Channels: 3, Height: 7, Width: 9, Size: 4, Pad: 1, Batch: 3}, tail: 1},
	}
	for _, ops := range opSets {
		for _, tc := range cases {
			t.Run(ops.Name()+"/"+tc.name, func(t *testing.T) {
				c := tc.cfg
				g, err := estep.New(c, ops)
				if err != nil {
					t.Fatal(err)
				}
				feats, err := estep.NewFeatures(c, ops)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(4, uint64(c.Kernels)))
				for _, n := range []int{c.Batch, tc.tail, c.Batch} {
					l := naive.Layer{N: n, C: c.Channels, H: c.Height, W: c.Width, K: c.Kernels, S: c.Size, P: c.Pad}
					xv := randn(rng, n*c.ImageLen(), 1)
					tv := randn(rng, c.Kernels*c.KernelLen(), 0.5)
					xc, tc := slices.Clone(xv), slices.Clone(tv)
					x := tensor.New(tensor.WithShape(n, c.Channels, c.Height, c.Width), tensor.WithBacking(xv))
					theta := tensor.New(tensor.WithShape(c.Kernels, c.Channels, c.Size, c.Size), tensor.WithBacking(tv))
					r, err := g.Run(x, theta)
					if err != nil {
						t.Fatal(err)
					}
					want := l.E(xv, tv)
					// L is a float32 sum of C·w·w products: 1e-5 relative.
					for _, chk := range []struct {
						name string
						got  []float32
						want []float64
						tol  float64
					}{
						{"log joint", r.LogJoint.Data().([]float32), want.LogJoint, 1e-5},
						{"log marginal", r.LogMarginal, want.LogMarginal, 1e-5},
						{"posterior", r.Posterior.Data().([]float32), exp(want.LogPosterior), 1e-4},
						{"log counts", r.LogCounts, want.LogCounts, 1e-4},
					} {
						if msg := closeTo(chk.got, chk.want, chk.tol); msg != "" {
							t.Errorf("n=%d: %s%s", n, chk.name, msg)
						}
					}
					var ll float64
					for _, v := range want.LogMarginal {
						ll += v
					}
					if math.Abs(r.LogLik-ll) > 1e-5*(1+math.Abs(ll)) {
						t.Errorf("n=%d: loglik %v, want %v", n, r.LogLik, ll)
					}
					f, err := feats.Run(x, theta)
					if err != nil {
						t.Fatal(err)
					}
					if msg := closeTo(f, want.Features, 1e-5); msg != "" {
						t.Errorf("n=%d: features%s", n, msg)
					}
					if !slices.Equal(xv, xc) || !slices.Equal(tv, tc) {
						t.Errorf("n=%d: the E-step modified its inputs", n)
					}
				}
			})
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := graph.Config{Kernels: 2, Channels: 1, Height: 5, Width: 5, Size: 3, Pad: 1, Batch: 2}
	for _, tc := range []struct {
		name   string
		change func(*graph.Config)
	}{
		{"zero kernels", func(c *graph.Config) { c.Kernels = 0 }},
		{"kernel wider than padded image", func(c *graph.Config) { c.Size = 8 }},
		{"negative padding", func(c *graph.Config) { c.Pad = -1 }},
		{"zero batch", func(c *graph.Config) { c.Batch = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			if _, err := estep.New(c, graph.Stock{}); err == nil {
				t.Errorf("estep.New(%+v) succeeded, want an error", c)
			}
		})
	}
}
