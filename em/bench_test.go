package em_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"calm/dataset"
	"calm/em"
	"calm/estep"
	"calm/gemm"
	"calm/graph"
	"calm/mstep"

	"gorgonia.org/tensor"
)

var benchSink float64

// peak measures, once per run, the float32 FMA peak of all GOMAXPROCS
// cores with the widest vectors this CPU has (gemm.MeasurePeak): the
// denominator of %peak.
var peak = sync.OnceValue(func() gemm.Peak {
	widths := gemm.PeakWidths()
	if len(widths) == 0 {
		return gemm.Peak{}
	}
	p, err := gemm.MeasurePeak(widths[0], time.Second)
	if err != nil {
		panic(err)
	}
	return p
})

// benchStep times the E-step ("E"), the M-step ("M") or both fused
// ("EM", estep.Fused) on one random batch and reports GFLOP/s (a
// multiply-add counts as 2), its fraction of the peak measured in the
// same run, and images/s.
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
	xt := tensor.New(tensor.WithShape(cfg.ImageShape(cfg.Batch)...), tensor.WithBacking(x))
	tt := tensor.New(tensor.WithShape(cfg.KernelShape()...), tensor.WithBacking(theta))
	e, err := estep.New(cfg, ops)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	m, err := mstep.New(cfg, ops)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	r, err := e.Run(xt, tt, nil)
	if err != nil {
		b.Fatal(err)
	}
	post := r.Posterior.Clone().(*tensor.Dense)
	var fused *estep.Fused
	if step == "EM" {
		if fused, err = estep.NewFused(cfg, ops); err != nil {
			b.Fatal(err)
		}
		defer fused.Close()
	}
	p := peak()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		switch step {
		case "E":
			r, err := e.Run(xt, tt, nil)
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
		case "EM":
			r, err := fused.RunTempered(xt, tt, nil, 1)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += r.LogLik
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	gflops := 2 * float64(cfg.Batch) * float64(cfg.MapLen()*cfg.KernelLen()) / sec / 1e9
	if step == "EM" {
		gflops *= 2 // both products
	}
	b.ReportMetric(gflops, "GFLOP/s")
	if p.AllCores > 0 {
		b.ReportMetric(100*gflops/p.AllCores, "%peak")
	}
	b.ReportMetric(float64(cfg.Batch)/sec, "images/s")
}

var (
	mnistCfg = graph.Config{Kernels: 64, Width: 20, Pad: 2, Channels: 1, Rows: 28, Cols: 28, Batch: 1000}
	stl10Cfg = graph.Config{Kernels: 200, Width: 15, Pad: 0, Channels: 3, Rows: 96, Cols: 96, Batch: 200}
	// MNIST's layer on 3-channel images: GFLOP/s comparable with C = 1.
	mnist3Cfg = graph.Config{Kernels: 64, Width: 20, Pad: 2, Channels: 3, Rows: 28, Cols: 28, Batch: 1000}
	// The deep preset's second layer: 128 kernels of 5×5 on the 64
	// channels of the first layer's posterior, pooled to 14×14.
	layer2Cfg = graph.Config{Kernels: 128, Width: 5, Pad: 0, Channels: 64, Rows: 14, Cols: 14, Batch: 1000}
	// The paper's layer under the patch model, and the default preset's
	// layer (128 kernels of 9×9, patch model) on MNIST.
	mnistPatchCfg   = graph.Config{Kernels: 64, Width: 20, Pad: 2, Channels: 1, Rows: 28, Cols: 28, Batch: 1000, Model: graph.PatchModel}
	defaultLayerCfg = graph.Config{Kernels: 128, Width: 9, Pad: 0, Channels: 1, Rows: 28, Cols: 28, Batch: 1000, Model: graph.PatchModel}
	// The same layer under the paper's model: what the layer's shape costs, whatever the model.
	defaultImageCfg = graph.Config{Kernels: 128, Width: 9, Pad: 0, Channels: 1, Rows: 28, Cols: 28, Batch: 1000}
	// The default layer with a variance per kernel: its E-step convolves
	// the images' energy channel too, twice the multiply-adds for C = 1
	// (GFLOP/s counts the model's, C·w·w a position and kernel).
	defaultVariancesCfg = graph.Config{Kernels: 128, Width: 9, Pad: 0, Channels: 1, Rows: 28, Cols: 28, Batch: 1000, Model: graph.PatchModel, KernelVariances: true}
	// CIFAR-10's size of layer (Coates, Lee & Ng's): 1 600 kernels of
	// 6×6×3 on 32×32 colour images at stride 1, the patch model; and the
	// same on whitened patches (em.Whitening.Patches), 1×1 kernels on the
	// 108 channels of 27×27 positions.
	cifarConvCfg    = graph.Config{Kernels: 1600, Width: 6, Pad: 0, Channels: 3, Rows: 32, Cols: 32, Batch: 100, Model: graph.PatchModel}
	cifarPatchesCfg = graph.Config{Kernels: 1600, Width: 1, Pad: 0, Channels: 108, Rows: 27, Cols: 27, Batch: 100, Model: graph.PatchModel}
	// A second layer on CIFAR-10: 1 600 kernels of 3×3 on the 400
	// channels of a first layer's posterior, max-pooled to 9×9. θ (23 MB)
	// outgrows the caches, which one image's 49 positions cannot amortise.
	cifarSecondCfg = graph.Config{Kernels: 1600, Width: 3, Pad: 0, Channels: 400, Rows: 9, Cols: 9, Batch: 100, Model: graph.PatchModel}
)

// BenchmarkPeak reports the peak the %peak of the other benchmarks is
// taken against.
func BenchmarkPeak(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchSink += peak().AllCores
	}
	b.ReportMetric(peak().AllCores, "GFLOP/s")
	b.ReportMetric(float64(peak().Bits), "bits")
}

// BenchmarkStep times one batch of each step with every op set, and the
// fused steps with the op sets that fuse them. No layer's name is part of
// another's, so a name selects one layer: -bench 'Step/Paper/fast/E$'.
func BenchmarkStep(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  graph.Config
	}{{"Paper", mnistCfg}, {"STL10", stl10Cfg}, {"ThreeChannel", mnist3Cfg}, {"SecondLayer", layer2Cfg}, {"PaperPatch", mnistPatchCfg},
		{"DefaultLayer", defaultLayerCfg}, {"DefaultImage", defaultImageCfg}, {"DefaultVariances", defaultVariancesCfg},
		{"CIFARConv", cifarConvCfg}, {"CIFARPatches", cifarPatchesCfg}, {"CIFARSecond", cifarSecondCfg}} {
		for _, ops := range graph.OpSets() {
			steps := []string{"E", "M"}
			if _, ok := ops.(graph.ExpectedStatser); ok && !tc.cfg.KernelVariances {
				steps = append(steps, "EM")
			}
			for _, step := range steps {
				b.Run(fmt.Sprintf("%s/%s/%s", tc.name, ops.Name(), step), func(b *testing.B) { benchStep(b, ops, tc.cfg, step) })
			}
		}
	}
}

// strokeLikeImages returns n random 28×28 images, a fifth of their pixels
// lit (uniform in [0,1)) and the rest 0, as in MNIST, drawn from seed.
func strokeLikeImages(b *testing.B, n int, seed uint64) *dataset.Images {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	pix := make([]float32, n*784)
	for i := range pix {
		if rng.IntN(5) == 0 {
			pix[i] = rng.Float32()
		}
	}
	src, err := dataset.NewImages(pix, n, 1, 28, 28)
	if err != nil {
		b.Fatal(err)
	}
	return src
}

// BenchmarkEpoch times one EM epoch over 10 000 MNIST-sized random images
// (the paper's layer) with each option of Settings on, against the paper's
// settings: what an option costs.
func BenchmarkEpoch(b *testing.B) {
	const n = 10000
	src := strokeLikeImages(b, n, 3)
	base := em.Settings{Kernels: 64, Width: 20, Pad: 2, Batch: 1000, MaxEpochs: 2}
	for _, tc := range []struct {
		name   string
		change func(*em.Settings)
	}{
		{"paper", func(*em.Settings) {}},
		{"mixing", func(s *em.Settings) { s.Mixing = true }},
		{"repair", func(s *em.Settings) { s.Repair = em.Repair{MinCount: 1, MaxCosine: 0.99} }},
		{"kmeans++", func(s *em.Settings) { s.InitFrom = em.InitKMeansPP }},
		{"all", func(s *em.Settings) {
			s.Mixing, s.InitFrom, s.Repair = true, em.InitKMeansPP, em.Repair{MinCount: 1, MaxCosine: 0.99}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := base
			tc.change(&s)
			for i := 0; i < b.N; i++ {
				res, err := em.Train(src, s)
				if err != nil {
					b.Fatal(err)
				}
				benchSink += res.LogLik[0]
			}
			// Two epochs per run: the first includes the initialisation, the
			// second the repair.
			b.ReportMetric(b.Elapsed().Seconds()/float64(2*b.N), "s/epoch")
		})
	}
}

// BenchmarkStackMaps carries 1000 random images through a first layer of
// 64 kernels of 5×5 (padding 2), its posterior over kernels max-pooled 2×2
// and standardised: what a second layer reads for every batch, and what
// its features cost beyond its own log joint.
func BenchmarkStackMaps(b *testing.B) {
	const n = 1000
	src := strokeLikeImages(b, n, 5)
	st, err := em.TrainStack(src, []em.StackLayer{
		{Settings: em.Settings{Kernels: 64, Width: 5, Pad: 2, MaxEpochs: em.NoEpochs, InitFrom: em.InitKMeansPP},
			Transform: graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MaxCells}},
		{Settings: em.Settings{Kernels: 8, Width: 5, MaxEpochs: em.NoEpochs}},
	}, nil, n, nil)
	if err != nil {
		b.Fatal(err)
	}
	in, err := st.Input(src, 1, nil, n)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	_, c, h, w := in.Shape()
	dst := make([]float32, n*c*h*w)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := in.Read(dst, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// mapsPooled is the fast op set pooling nothing in place: each batch's
// maps written, then pooled (the way before graph.ConvPooler).
type mapsPooled struct{ graph.Fast }

func (mapsPooled) Name() string                 { return "fast/maps" }
func (mapsPooled) ConvPools(graph.Pooling) bool { return false }

// BenchmarkFeatures times the features of 200 random images pooled over
// quadrants, with the maps pooled inside the convolution and written then
// pooled: under CIFAR-10's layer on whitened patches (1 600 kernels of 1×1
// on 108 channels of 27×27 positions) the posterior's square root and the
// triangle encoding, under a second layer's (CIFARSecond, 7×7 positions)
// the posterior's square root and the log joint's log-sum-exp: images/s
// and the E-step's GFLOP/s against the peak measured in the same run.
func BenchmarkFeatures(b *testing.B) {
	const n = 200
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		layer string
		cfg   graph.Config
		pools []string
	}{{"CIFARPatches", cifarPatchesCfg, []string{"post-root-mean2", "tri-mean2"}}, {"CIFARSecond", cifarSecondCfg, []string{"post-root-mean2", "lse2"}}} {
		cfg := tc.cfg
		pix := make([]float32, n*cfg.ImageLen())
		for i := range pix {
			pix[i] = float32(rng.NormFloat64())
		}
		src, err := dataset.NewImages(pix, n, cfg.Channels, cfg.Rows, cfg.Cols)
		if err != nil {
			b.Fatal(err)
		}
		theta := make([]float32, cfg.Kernels*cfg.KernelLen())
		for i := range theta {
			theta[i] = float32(rng.NormFloat64())
		}
		layer := em.Layer{Theta: tensor.New(tensor.WithShape(cfg.KernelShape()...), tensor.WithBacking(theta))}
		for _, name := range tc.pools {
			p, err := graph.ParsePooling(name)
			if err != nil {
				b.Fatal(err)
			}
			for _, ops := range []graph.Ops{graph.Fast{}, mapsPooled{}} {
				b.Run(tc.layer+"/"+name+"/"+ops.Name(), func(b *testing.B) {
					pk := peak()
					for i := 0; i < b.N; i++ {
						f, err := em.Features(src, layer, p, ops, 50)
						if err != nil {
							b.Fatal(err)
						}
						benchSink += float64(f[0])
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					gflops := 2 * float64(n) * float64(cfg.MapLen()*cfg.KernelLen()) / sec / 1e9
					b.ReportMetric(float64(n)/sec, "images/s")
					b.ReportMetric(gflops, "GFLOP/s")
					if pk.AllCores > 0 {
						b.ReportMetric(100*gflops/pk.AllCores, "%peak")
					}
				})
			}
		}
	}
}
