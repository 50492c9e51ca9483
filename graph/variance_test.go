package graph_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestKernelEnergy compares Σ_{n,u} γ[n,k,u]·‖x_u‖² with float64 loops
// (the squared distance of each patch from a zero kernel), with and
// without padding, over several channels.
func TestKernelEnergy(t *testing.T) {
	for _, c := range []graph.Config{
		{Kernels: 4, Width: 3, Pad: 0, Channels: 1, Rows: 8, Cols: 6, Batch: 5},
		{Kernels: 3, Width: 5, Pad: 2, Channels: 3, Rows: 7, Cols: 9, Batch: 4},
	} {
		t.Run(fmt.Sprintf("C%d/pad%d", c.Channels, c.Pad), func(t *testing.T) {
			step, err := graph.NewStep(c, []graph.Input{graph.Images(c), graph.Posterior(c)}, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
				e, err := graph.KernelEnergy(in[0], in[1], c.Width, c.Pad)
				return []*G.Node{e}, err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer step.Close()
			rng := rand.New(rand.NewPCG(5, uint64(c.Channels)))
			n := c.Batch
			xv := graphtest.Randn(rng, n*c.ImageLen(), 1)
			gv := make([]float32, n*c.MapLen())
			for i := range gv {
				gv[i] = rng.Float32()
			}
			out, err := step.Run(tensor.New(tensor.WithShape(c.ImageShape(n)...), tensor.WithBacking(xv)), tensor.New(tensor.WithShape(c.MapShape(n)...), tensor.WithBacking(gv)))
			if err != nil {
				t.Fatal(err)
			}
			l := naive.Layer{N: n, C: c.Channels, Rows: c.Rows, Cols: c.Cols, K: c.Kernels, Width: c.Width, Pad: c.Pad}
			norms := l.Distances(xv, make([]float32, c.Kernels*c.KernelLen()))
			want := make([]float64, c.Kernels)
			uh, uw := c.Positions()
			for i, v := range norms {
				want[i/(uh*uw)%c.Kernels] += float64(gv[i]) * v
			}
			if msg := graphtest.CloseTo(out[0].Data().([]float32), want, 1e-6); msg != "" {
				t.Errorf("kernel energy%s", msg)
			}
		})
	}
}
