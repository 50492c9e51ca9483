package em_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"calm/estep"
	"calm/gemm"
	"calm/graph"
	"calm/mstep"

	"gonum.org/v1/gonum/blas/gonum"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var benchSink float64

// peakGFLOPS is a lower bound on this machine's float32 FMA peak over both
// cores: package gemm's micro-kernel alone sustains 110 GFLOP/s on one core
// (go test ./gemm -bench Kernel). The 157 GFLOP/s of
// shared/notes/performance.md assumed a 2.45 GHz Zen 3; this CPU reports as
// a Turin-like EPYC and runs faster, so %peak here is, if anything, high.
const peakGFLOPS = 220

// benchStep times the E-step or the M-step graph on one random batch and
// reports GFLOP/s (a multiply-add counts as 2), its fraction of the peak
// and images/s.
func benchStep(b *testing.B, ops graph.Ops, cfg graph.Config, step string) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, cfg.Batch*cfg.ImageLen())
	for i := range x {
		x[i] = rng.Float32()
	}
	theta := make([]float32, cfg.Kernels*cfg.KernelLen())
	for i := range theta {
		theta[i] = float32(rng.NormFloat64() * 0.1)
	}
	xt := tensor.New(tensor.WithShape(cfg.Batch, cfg.Channels, cfg.Height, cfg.Width), tensor.WithBacking(x))
	tt := tensor.New(tensor.WithShape(cfg.Kernels, cfg.Channels, cfg.Size, cfg.Size), tensor.WithBacking(theta))
	e, err := estep.New(cfg, ops)
	if err != nil {
		b.Fatal(err)
	}
	m, err := mstep.New(cfg, ops)
	if err != nil {
		b.Fatal(err)
	}
	r, err := e.Run(xt, tt)
	if err != nil {
		b.Fatal(err)
	}
	post := r.Posterior.Clone().(*tensor.Dense)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		switch step {
		case "E":
			r, err := e.Run(xt, tt)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += r.LogLik
		case "M":
			s, err := m.Run(xt, post)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += float64(s.Data().([]float32)[0])
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	gflops := 2 * float64(cfg.Batch) * float64(cfg.MulAdds()) / sec / 1e9
	b.ReportMetric(gflops, "GFLOP/s")
	b.ReportMetric(100*gflops/peakGFLOPS, "%peak")
	b.ReportMetric(float64(cfg.Batch)/sec, "images/s")
}

var (
	mnistCfg = graph.Config{Kernels: 64, Channels: 1, Height: 28, Width: 28, Size: 20, Pad: 2, Batch: 1000}
	stl10Cfg = graph.Config{Kernels: 200, Channels: 3, Height: 96, Width: 96, Size: 15, Pad: 0, Batch: 200}
)

func BenchmarkStep(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  graph.Config
		ops  []graph.Ops
	}{
		{"MNIST", mnistCfg, []graph.Ops{graph.Fast{}, graph.Stock{}}},
		{"STL10", stl10Cfg, []graph.Ops{graph.Fast{}}},
		// MNIST's layer on 3-channel images: GFLOP/s comparable with C = 1.
		{"MNIST-C3", graph.Config{Kernels: 64, Channels: 3, Height: 28, Width: 28, Size: 20, Pad: 2, Batch: 1000}, []graph.Ops{graph.Fast{}}},
	} {
		for _, ops := range tc.ops {
			for _, step := range []string{"E", "M"} {
				b.Run(fmt.Sprintf("%s/%s/%s", tc.name, ops.Name(), step), func(b *testing.B) { benchStep(b, ops, tc.cfg, step) })
				if ops.Name() != (graph.Stock{}).Name() {
					continue
				}
				// The stock ops again, with package gemm as Gorgonia's BLAS.
				b.Run(fmt.Sprintf("%s/%s+gemm/%s", tc.name, ops.Name(), step), func(b *testing.B) {
					G.Use(gemm.Implementation{})
					defer G.Use(gonum.Implementation{})
					benchStep(b, ops, tc.cfg, step)
				})
			}
		}
	}
}
