package graph_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"calm/graph"
	"calm/graph/graphtest"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestContrastNormalize compares the op, after a convolution, with float64
// loops that cut each patch out, normalise it by its own variance and
// take its dot product with each filter: on images of 1 and 3 channels,
// bright and dark, and on a flat image whose variance is 0.
func TestContrastNormalize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		name             string
		n, ch, h, w, k   int // k: patch width
		d                int // filters
		offset, eps, amp float64
	}{
		{name: "grey", n: 2, ch: 1, h: 7, w: 9, k: 3, d: 4, offset: 0, eps: 1e-4, amp: 1},
		{name: "colour", n: 3, ch: 3, h: 8, w: 8, k: 4, d: 5, offset: 5, eps: 0.1, amp: 0.5},
		{name: "flat", n: 1, ch: 2, h: 5, w: 5, k: 2, d: 3, offset: 0.3, eps: 1e-3, amp: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			uh, uw := c.h-c.k+1, c.w-c.k+1
			cfg := graph.Config{Kernels: c.d, Width: c.k, Channels: c.ch, Rows: c.h, Cols: c.w, Batch: c.n}
			step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg)}, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
				y, err := graph.Fast{}.Conv2d(in[0], in[1], zeroBias(in[1]), 0)
				if err != nil {
					return nil, err
				}
				out, err := graph.ContrastNormalize(y, in[0], in[2], c.k, c.eps)
				return []*G.Node{out}, err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer step.Close()
			x := graphtest.Randn(rng, c.n*c.ch*c.h*c.w, c.amp)
			for i := range x {
				x[i] += float32(c.offset)
			}
			f := graphtest.Randn(rng, c.d*c.ch*c.k*c.k, 1)
			bias := graphtest.Randn(rng, c.d, 1)
			out, err := step.Run(tensor.New(tensor.WithShape(c.n, c.ch, c.h, c.w), tensor.WithBacking(x)),
				tensor.New(tensor.WithShape(c.d, c.ch, c.k, c.k), tensor.WithBacking(f)),
				tensor.New(tensor.WithShape(c.d), tensor.WithBacking(bias)))
			if err != nil {
				t.Fatal(err)
			}
			size := c.ch * c.k * c.k
			want := make([]float64, c.n*c.d*uh*uw)
			for i := 0; i < c.n; i++ {
				for y := 0; y < uh; y++ {
					for xx := 0; xx < uw; xx++ {
						patch := make([]float64, 0, size)
						for ch := 0; ch < c.ch; ch++ {
							for a := 0; a < c.k; a++ {
								for b := 0; b < c.k; b++ {
									patch = append(patch, float64(x[((i*c.ch+ch)*c.h+y+a)*c.w+xx+b]))
								}
							}
						}
						var mean, v float64
						for _, p := range patch {
							mean += p / float64(size)
						}
						for _, p := range patch {
							v += (p - mean) * (p - mean) / float64(size)
						}
						for d := 0; d < c.d; d++ {
							var dot float64
							for j, p := range patch {
								dot += float64(f[d*size+j]) * p
							}
							want[((i*c.d+d)*uh+y)*uw+xx] = dot/math.Sqrt(v+c.eps) + float64(bias[d])
						}
					}
				}
			}
			// The convolution's float32 sum of size terms of about
			// |offset|+amp, scaled by up to 1/√ε: relative to that scale.
			scale := (c.offset + c.amp + 1) * math.Sqrt(float64(size)) / math.Sqrt(c.eps)
			if msg := graphtest.CloseTo(out[0].Data().([]float32), want, 2e-6*scale); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// zeroBias returns a node of zeros, one per kernel of theta.
func zeroBias(theta *G.Node) *G.Node {
	k := theta.Shape()[0]
	return G.NewConstant(tensor.New(tensor.WithShape(k), tensor.WithBacking(make([]float32, k))), G.WithName("zero-bias"))
}
