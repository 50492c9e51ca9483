package estep_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/estep"
	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func exp(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Exp(x)
	}
	return out
}

// checkResult compares an E-step's outputs with float64 loops': the log
// marginal within the relative tolerance margTol (the patch model's ℓ sums
// Uh·Uw log-sum-exps in float64), the posterior and the log counts within
// 1e-4.
func checkResult(t *testing.T, what string, r *estep.Result, want naive.EStep, margTol float64) {
	t.Helper()
	for _, chk := range []struct {
		name string
		got  []float32
		want []float64
		tol  float64
	}{
		{"log marginal", r.LogMarginal, want.LogMarginal, margTol},
		{"posterior", r.Posterior.Data().([]float32), exp(want.LogPosterior), 1e-4},
		{"log counts", r.LogCounts, want.LogCounts, 1e-4},
	} {
		if msg := graphtest.CloseTo(chk.got, chk.want, chk.tol); msg != "" {
			t.Errorf("%s: %s%s", what, chk.name, msg)
		}
	}
}

// TestEStep compares every output of the E-step with direct float64 loops,
// with uniform and with random mixing weights, on a full batch, a tail
// batch and a full batch again (at inverse temperature β = 0.6), for every
// op set; and the features (of variance 1/β on the last batch), for each
// kind of pooling.
func TestEStep(t *testing.T) {
	cases := []struct {
		name string
		cfg  graph.Config
		tail int
	}{
		{name: "C1/pad0", cfg: graph.Config{Kernels: 4, Width: 3, Pad: 0, Channels: 1, Rows: 8, Cols: 8, Batch: 5}, tail: 2},
		{name: "C1/pad2", cfg: graph.Config{Kernels: 6, Width: 5, Pad: 2, Channels: 1, Rows: 9, Cols: 7, Batch: 4}, tail: 3},
		{name: "C3/pad1", cfg: graph.Config{Kernels: 5, Width: 4, Pad: 1, Channels: 3, Rows: 7, Cols: 9, Batch: 3}, tail: 1},
	}
	pools := []string{"image", "lse2", "lse3", "max", "max3", "mean2", "lse-pyramid2", "post-mean2", "post-max", "post-root-mean-pyramid2",
		"post-t4-root-mean2", "post-t0.5-max", "tri-mean2", "tri-mean-pyramid2"}
	for _, ops := range append(graph.OpSets(), unfused{}) {
		for _, tc := range cases {
			for _, model := range []graph.Model{graph.ImageModel, graph.PatchModel} {
				t.Run(ops.Name()+"/"+tc.name+"/"+model.String(), func(t *testing.T) {
					c := tc.cfg
					c.Model = model
					g, err := estep.New(c, ops)
					if err != nil {
						t.Fatal(err)
					}
					defer g.Close()
					rng := rand.New(rand.NewPCG(4, uint64(c.Kernels)))
					for run, n := range []int{c.Batch, tc.tail, c.Batch} {
						l := naive.Layer{N: n, C: c.Channels, Rows: c.Rows, Cols: c.Cols, K: c.Kernels, Width: c.Width, Pad: c.Pad}
						xv := graphtest.Randn(rng, n*c.ImageLen(), 1)
						tv := graphtest.Randn(rng, c.Kernels*c.KernelLen(), 0.5)
						x := tensor.New(tensor.WithShape(c.ImageShape(n)...), tensor.WithBacking(xv))
						theta := tensor.New(tensor.WithShape(c.KernelShape()...), tensor.WithBacking(tv))
						var prior *tensor.Dense
						var prior64 []float64
						if run == 1 {
							// Log weights of a distribution over the kernels.
							w := graphtest.Randn(rng, c.Kernels, 1)
							var s float64
							for _, v := range w {
								s += math.Exp(float64(v))
							}
							prior64 = make([]float64, c.Kernels)
							for k, v := range w {
								w[k] = float32(float64(v) - math.Log(s))
								prior64[k] = float64(w[k])
							}
							prior = tensor.New(tensor.WithShape(c.Kernels), tensor.WithBacking(w))
						}
						beta := 1.0
						if run == 2 {
							beta = 0.6
						}
						r, err := g.RunTempered(x, theta, prior, float32(beta))
						if err != nil {
							t.Fatal(err)
						}
						// β scales the Gaussian part, not the log weights.
						uh, uw := c.Positions()
						tempered := l.LogJoint(xv, tv, nil)
						for i := range tempered {
							tempered[i] *= beta
							if prior64 != nil {
								tempered[i] += prior64[i/(uh*uw)%c.Kernels]
							}
						}
						want := l.EFrom(tempered)
						if model == graph.PatchModel {
							want = l.EPatchFrom(tempered)
						}
						// L is a float32 sum of C·w·w products: 1e-5 relative.
						checkResult(t, fmt.Sprintf("n=%d", n), r, want, 1e-5)
						var ll float64
						for _, v := range want.LogMarginal {
							ll += v
						}
						if math.Abs(r.LogLik-ll) > 1e-5*(1+math.Abs(ll)) {
							t.Errorf("n=%d: loglik %v, want %v", n, r.LogLik, ll)
						}
						for _, name := range pools {
							p, err := graph.ParsePooling(name)
							if err != nil {
								t.Fatal(err)
							}
							f, err := estep.NewStackFeatures([]estep.Stage{{Config: c}}, ops, estep.Pooled(p, 0))
							if err != nil {
								t.Fatal(err)
							}
							got := make([]float32, n*f.Len())
							xc, tc := slices.Clone(xv), slices.Clone(tv)
							if err := f.RunInto(got, x, []estep.StageParams{{Theta: theta, LogPrior: prior, Variance: 1 / beta}}); err != nil {
								t.Fatal(err)
							}
							maps := tempered
							switch {
							case p.Posterior && p.Tempered():
								scaled := slices.Clone(maps)
								for i := range scaled {
									scaled[i] /= p.Temperature
								}
								maps = naive.KernelSoftmax(scaled, n, c.Kernels, uh*uw)
							case p.Posterior:
								maps = naive.KernelSoftmax(maps, n, c.Kernels, uh*uw)
							case p.Triangle:
								maps = triangle(l, xv, maps)
							}
							if msg := graphtest.CloseTo(got, graphtest.Pooled(maps, uh, uw, p), 1e-5); msg != "" {
								t.Errorf("n=%d: features %s%s", n, name, msg)
							}
							if !slices.Equal(xv, xc) || !slices.Equal(tv, tc) {
								t.Errorf("n=%d: the features modified their inputs", n)
							}
							f.Close()
						}
					}
				})
			}
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := graph.Config{Kernels: 2, Width: 3, Pad: 1, Channels: 1, Rows: 5, Cols: 5, Batch: 2}
	for _, tc := range []struct {
		name   string
		change func(*graph.Config)
	}{
		{"zero kernels", func(c *graph.Config) { c.Kernels = 0 }},
		{"kernel wider than padded image", func(c *graph.Config) { c.Width = 8 }},
		{"negative padding", func(c *graph.Config) { c.Pad = -1 }},
		{"zero batch", func(c *graph.Config) { c.Batch = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			if _, err := estep.New(c, graph.Fast{}); err == nil {
				t.Errorf("estep.New(%+v) succeeded, want an error", c)
			}
		})
	}
}

// TestMostProbable plants one kernel's mass and checks it is found.
func TestMostProbable(t *testing.T) {
	post := []float32{0.1, 0.1, 0.3, 0.2, 0.05, 0.25}
	if k, p := estep.MostProbable(post, 3, 2); k != 1 || math.Abs(p-0.5) > 1e-7 {
		t.Errorf("MostProbable = %d, %v; want kernel 1 with mass 0.5", k, p)
	}
}

// unfused is the fast op set with a JointPosterior that fuses no model:
// the E-step must fall back to the convolution and the posterior apart.
type unfused struct{ graph.Fast }

func (unfused) Name() string { return "unfused" }

func (unfused) LogJointPosterior(_, _, _ *G.Node, _ int, m graph.Model) (_, _, _ *G.Node, err error) {
	return nil, nil, nil, fmt.Errorf("unfused: %w: %v", graph.ErrNotFused, m)
}

func (unfused) ConvPools(graph.Pooling) bool { return false }

// notPooled is the fast op set that pools nothing in place: it writes the
// maps (the fused posterior, the log joint) and pools them apart.
type notPooled struct{ graph.Fast }

func (notPooled) ConvPools(graph.Pooling) bool { return false }

// TestConvPool: features pooled inside the convolution (graph.Fast's
// ConvPool) are, bit for bit, the maps pooled apart (the same op set
// pooling nothing in place), for the posterior's and the triangle
// encoding's mean poolings and every pooling of the log joint; a tempered
// posterior's, up to its exponentials' rounding. With padding, a tail
// batch, and blocks of positions of several images and of part of one.
func TestConvPool(t *testing.T) {
	// An image has 110 positions: with 700 kernels three images go
	// through θ together (a batch of 5 in two blocks, of 3 images and 2);
	// with 1 600, an image goes in four blocks (32 positions, and 14).
	for _, k := range []int{700, 1600} {
		t.Run(fmt.Sprintf("K%d", k), func(t *testing.T) { testConvPool(t, k) })
	}
}

func testConvPool(t *testing.T, k int) {
	cfg := graph.Config{Kernels: k, Width: 3, Pad: 1, Channels: 2, Rows: 11, Cols: 10, Batch: 5, Model: graph.PatchModel}
	rng := rand.New(rand.NewPCG(21, 22))
	x := graphtest.Randn(rng, cfg.Batch*cfg.ImageLen(), 1)
	theta := graphtest.Randn(rng, cfg.Kernels*cfg.KernelLen(), 0.5)
	for _, name := range []string{"post-root-mean2", "post-mean-pyramid3", "post-root-mean", "tri-mean2", "tri-mean-pyramid2", "post-t4-root-mean2", "lse2", "image", "lse-pyramid3", "max3", "mean2"} {
		p, err := graph.ParsePooling(name)
		if err != nil {
			t.Fatal(err)
		}
		run := func(ops graph.Ops, n int) []float32 {
			f, err := estep.NewStackFeatures([]estep.Stage{{Config: cfg}}, ops, estep.Pooled(p, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := make([]float32, n*f.Len())
			xt := tensor.New(tensor.WithShape(cfg.ImageShape(n)...), tensor.WithBacking(x[:n*cfg.ImageLen()]))
			tt := tensor.New(tensor.WithShape(cfg.KernelShape()...), tensor.WithBacking(theta))
			if err := f.RunInto(got, xt, []estep.StageParams{{Theta: tt}}); err != nil {
				t.Fatal(err)
			}
			return got
		}
		for _, n := range []int{cfg.Batch, 3} {
			inPlace, apart := run(graph.Fast{}, n), run(notPooled{}, n)
			if p.Tempered() {
				if msg := graphtest.CloseTo(inPlace, to64(apart), 1e-6); msg != "" {
					t.Errorf("%s, %d images: in place%s", name, n, msg)
				}
				continue
			}
			if !slices.Equal(inPlace, apart) {
				t.Errorf("%s, %d images: pooled in place, the features differ from the maps pooled apart", name, n)
			}
		}
	}
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestKernelVariances compares the E-step of kernels of a variance each
// (graph.Config.KernelVariances) with float64 loops written from the
// density, log N(x_u; θ_k, σ_k²I) + log π_k by squared distances (not from
// the graph's algebra), for random variances on a full and a tail batch,
// for every op set; and its features, pooled, and RunTempered, which gives
// every kernel the one inverse temperature.
func TestKernelVariances(t *testing.T) {
	for _, ops := range append(graph.OpSets(), unfused{}) {
		for _, c := range []graph.Config{
			{Kernels: 6, Width: 5, Pad: 2, Channels: 1, Rows: 9, Cols: 7, Batch: 4},
			{Kernels: 5, Width: 4, Pad: 1, Channels: 3, Rows: 7, Cols: 9, Batch: 3},
		} {
			c.Model, c.KernelVariances = graph.PatchModel, true
			t.Run(fmt.Sprintf("%s/C%d", ops.Name(), c.Channels), func(t *testing.T) {
				g, err := estep.New(c, ops)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				rng := rand.New(rand.NewPCG(9, uint64(c.Channels)))
				d := float64(c.KernelLen())
				uh, uw := c.Positions()
				for run, n := range []int{c.Batch, 2, c.Batch} {
					l := naive.Layer{N: n, C: c.Channels, Rows: c.Rows, Cols: c.Cols, K: c.Kernels, Width: c.Width, Pad: c.Pad}
					xv := graphtest.Randn(rng, n*c.ImageLen(), 1)
					tv := graphtest.Randn(rng, c.Kernels*c.KernelLen(), 0.5)
					x := tensor.New(tensor.WithShape(c.ImageShape(n)...), tensor.WithBacking(xv))
					theta := tensor.New(tensor.WithShape(c.KernelShape()...), tensor.WithBacking(tv))
					variances := make([]float64, c.Kernels)
					precision := make([]float32, c.Kernels)
					for k := range variances {
						precision[k] = float32(0.3 + 2.7*rng.Float64())
						variances[k] = 1 / float64(precision[k])
					}
					prior64 := make([]float64, c.Kernels)
					prior := tensor.New(tensor.WithShape(c.Kernels), tensor.WithBacking(make([]float32, c.Kernels)))
					for k := range prior64 {
						prior.Data().([]float32)[k] = float32(-math.Log(float64(c.Kernels)) + 0.3*rng.NormFloat64())
						prior64[k] = float64(prior.Data().([]float32)[k])
					}
					var r *estep.Result
					if run == 2 { // every kernel at β = 0.7 through RunTempered
						for k := range precision {
							precision[k], variances[k] = 0.7, 1/0.7
						}
						r, err = g.RunTempered(x, theta, prior, 0.7)
					} else {
						r, err = g.RunPrecise(x, theta, prior, precision)
					}
					if err != nil {
						t.Fatal(err)
					}
					dist := l.Distances(xv, tv)
					lj := make([]float64, len(dist))
					for i, v := range dist {
						k := i / (uh * uw) % c.Kernels
						lambda := float64(precision[k])
						lj[i] = -lambda*v/2 + d/2*math.Log(lambda) + prior64[k]
					}
					want := l.EPatchFrom(lj)
					// L now holds −½λ‖x_u‖² too: float32 sums of larger terms.
					checkResult(t, fmt.Sprintf("run %d, n=%d", run, n), r, want, 2e-5)
					p := graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 2}
					f, err := estep.NewStackFeatures([]estep.Stage{{Config: c}}, ops, estep.Pooled(p, 0))
					if err != nil {
						t.Fatal(err)
					}
					got := make([]float32, n*f.Len())
					if err := f.RunInto(got, x, []estep.StageParams{{Theta: theta, LogPrior: prior, Variances: variances}}); err != nil {
						t.Fatal(err)
					}
					if msg := graphtest.CloseTo(got, naive.Pool(lj, uh, uw, 2, "lse"), 2e-5); msg != "" {
						t.Errorf("run %d, n=%d: features%s", run, n, msg)
					}
					if err := f.RunInto(got, x, []estep.StageParams{{Theta: theta, LogPrior: prior, Variances: variances[1:]}}); err == nil {
						t.Errorf("features with %d variances for %d kernels: no error", c.Kernels-1, c.Kernels)
					}
					f.Close()
				}
				if _, err := g.RunPrecise(nil, nil, nil, make([]float32, c.Kernels-1)); err == nil {
					t.Error("RunPrecise with a precision too few: no error")
				}
			})
		}
	}
	shared, err := estep.New(graph.Config{Kernels: 2, Width: 2, Channels: 1, Rows: 3, Cols: 3, Batch: 1, Model: graph.PatchModel}, graph.OpSets()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	if _, err := shared.RunPrecise(nil, nil, nil, []float32{1, 2}); err == nil {
		t.Error("RunPrecise on kernels of one shared variance: no error")
	}
}

// triangle returns the triangle encoding of the log joint lj of images x
// under layer l (z² = ‖x_u‖² − 2L, f = max(0, mean z − z)), each patch's
// energy its distance to a kernel of zeros.
func triangle(l naive.Layer, x []float32, lj []float64) []float64 {
	zero := l
	zero.K = 1
	energy := zero.Distances(x, make([]float32, l.C*l.Width*l.Width))
	uh, uw := l.Positions()
	u := uh * uw
	out := make([]float64, len(lj))
	for n := 0; n < l.N; n++ {
		for p := 0; p < u; p++ {
			z := make([]float64, l.K)
			var mean float64
			for k := range z {
				z[k] = math.Sqrt(max(energy[n*u+p]-2*lj[(n*l.K+k)*u+p], 0))
				mean += z[k] / float64(l.K)
			}
			for k, v := range z {
				out[(n*l.K+k)*u+p] = max(0, mean-v)
			}
		}
	}
	return out
}
