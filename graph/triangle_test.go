package graph_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestTriangle compares the triangle encoding of a log joint (the fast
// convolution's) with float64 loops that measure each patch's distance to
// each kernel directly: with padding, with 1×1 kernels on many channels
// (the layer on whitened patches), and with a kernel on a patch (z = 0).
func TestTriangle(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, c := range []struct {
		name  string
		layer naive.Layer
		plant bool // kernel 0 is image 0's first patch
	}{
		{name: "padded", layer: naive.Layer{N: 2, C: 2, Rows: 6, Cols: 7, K: 5, Width: 3, Pad: 1}},
		{name: "1x1", layer: naive.Layer{N: 3, C: 12, Rows: 4, Cols: 4, K: 7, Width: 1}},
		{name: "planted", layer: naive.Layer{N: 1, C: 1, Rows: 5, Cols: 5, K: 3, Width: 2}, plant: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := c.layer
			uh, uw := l.Positions()
			cfg := graph.Config{Kernels: l.K, Width: l.Width, Pad: l.Pad, Channels: l.C, Rows: l.Rows, Cols: l.Cols, Batch: l.N}
			step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg)}, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
				lj, err := graph.Fast{}.Conv2d(in[0], in[1], in[2], l.Pad)
				if err != nil {
					return nil, err
				}
				f, err := graph.Triangle(lj, in[0], l.Width, l.Pad)
				return []*G.Node{f}, err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer step.Close()
			d := l.C * l.Width * l.Width
			x := graphtest.Randn(rng, l.N*l.C*l.Rows*l.Cols, 1)
			theta := graphtest.Randn(rng, l.K*d, 1)
			if c.plant {
				for a := 0; a < l.Width; a++ {
					for b := 0; b < l.Width; b++ {
						theta[a*l.Width+b] = x[a*l.Cols+b]
					}
				}
			}
			bias := make([]float32, l.K)
			for k := range bias {
				var sq float64
				for _, v := range theta[k*d : (k+1)*d] {
					sq += float64(v) * float64(v)
				}
				bias[k] = float32(-sq / 2)
			}
			out, err := step.Run(tensor.New(tensor.WithShape(l.N, l.C, l.Rows, l.Cols), tensor.WithBacking(x)),
				tensor.New(tensor.WithShape(l.K, l.C, l.Width, l.Width), tensor.WithBacking(theta)),
				tensor.New(tensor.WithShape(l.K), tensor.WithBacking(bias)))
			if err != nil {
				t.Fatal(err)
			}
			dist := l.Distances(x, theta)
			u := uh * uw
			want := make([]float64, len(dist))
			for n := 0; n < l.N; n++ {
				for p := 0; p < u; p++ {
					var mean float64
					for k := 0; k < l.K; k++ {
						mean += math.Sqrt(dist[(n*l.K+k)*u+p]) / float64(l.K)
					}
					for k := 0; k < l.K; k++ {
						want[(n*l.K+k)*u+p] = max(0, mean-math.Sqrt(dist[(n*l.K+k)*u+p]))
					}
				}
			}
			// z = √(‖x‖² − 2L) from a float32 L of terms about d: the
			// cancellation costs up to √(d·1e-6) near z = 0.
			got := out[0].Data().([]float32)
			if msg := graphtest.CloseTo(got, want, 2e-3*math.Sqrt(float64(d))); msg != "" {
				t.Error(msg)
			}
			if c.plant {
				if got0, want0 := got[0], want[0]; want0 == 0 || math.Abs(float64(got0)-want0) > 1e-2 {
					t.Errorf("the planted kernel on its patch: %v, want the mean distance %v", got0, want0)
				}
			}
		})
	}
}
