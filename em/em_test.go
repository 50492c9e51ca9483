package em_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"calm/dataset"
	"calm/em"
	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	"gorgonia.org/tensor"
)

// planted samples n images from the model itself: N(0,1) noise, plus one of
// the kernels, drawn with probabilities freq (nil: uniform), added at one
// uniformly drawn position (pad 0). It returns the images and how many
// came from each kernel.
func planted(rng *rand.Rand, kernels [][]float64, freq []float64, n, size, side int) ([]float32, []int) {
	pix := make([]float32, n*side*side)
	for i := range pix {
		pix[i] = float32(rng.NormFloat64())
	}
	u := side - size + 1
	count := make([]int, len(kernels))
	for i := 0; i < n; i++ {
		k := rng.IntN(len(kernels))
		if freq != nil {
			r := rng.Float64()
			for k = 0; k < len(freq)-1 && r >= freq[k]; k++ {
				r -= freq[k]
			}
		}
		count[k]++
		y, x := rng.IntN(u), rng.IntN(u)
		for a := 0; a < size; a++ {
			for b := 0; b < size; b++ {
				pix[i*side*side+(y+a)*side+x+b] += float32(kernels[k][a*size+b])
			}
		}
	}
	return pix, count
}

// randomKernels returns k kernels of size×size values from N(0, scale²).
func randomKernels(rng *rand.Rand, k, size int, scale float64) [][]float64 {
	var kernels [][]float64
	for i := 0; i < k; i++ {
		v := make([]float64, size*size)
		for j := range v {
			v[j] = scale * rng.NormFloat64()
		}
		kernels = append(kernels, v)
	}
	return kernels
}

// match returns, for each planted kernel, the learned kernel nearest to it
// and their relative distance; it fails the test if two planted kernels
// share a learned one or one is farther than maxRel.
func match(t *testing.T, planted [][]float64, got []float32, maxRel float64) []int {
	t.Helper()
	d := len(planted[0])
	k := len(got) / d
	var pick []int
	for i, want := range planted {
		best, bestErr := -1, math.Inf(1)
		for j := 0; j < k; j++ {
			var dist, norm float64
			for p, w := range want {
				g := float64(got[j*d+p])
				dist += (g - w) * (g - w)
				norm += w * w
			}
			if rel := math.Sqrt(dist / norm); rel < bestErr {
				best, bestErr = j, rel
			}
		}
		if bestErr > maxRel || slices.Contains(pick, best) {
			t.Errorf("planted kernel %d: nearest learned kernel %d is off by %.3f (relative), taken already: %v", i, best, bestErr, slices.Contains(pick, best))
		}
		pick = append(pick, best)
	}
	return pick
}

// monotone fails the test if the LL decreases from one epoch to the next,
// or from the last epoch to the trained kernels, beyond float32 rounding,
// except right after a repair.
func monotone(t *testing.T, r *em.Result) {
	t.Helper()
	if r.FinalLogLik == nil {
		t.Fatalf("no LL of the trained kernels after %d epochs", len(r.LogLik))
	}
	ll := append(slices.Clone(r.LogLik), *r.FinalLogLik)
	for e := 1; e < len(ll); e++ {
		if slices.ContainsFunc(r.Reseeded, func(rs em.Reseed) bool { return rs.Epoch == e }) {
			continue
		}
		// float32 sums of log marginals of size ~1e2 over the images.
		if ll[e] < ll[e-1]-1e-6*math.Abs(ll[e-1]) {
			t.Errorf("LL decreased from epoch %d to %d (%d: the trained kernels): %v → %v", e, e+1, len(ll), ll[e-1], ll[e])
		}
	}
}

// TestPlanted trains on data sampled from the model with known kernels:
// the log-likelihood must never decrease (EM's defining property) and the
// learned kernels must match the planted ones up to permutation, for every
// op set.
//
// Kernels are drawn at the scale of the N(0,1) initial θ: with kernels much
// stronger than that (scale 2 and more), one random kernel takes every
// image in the first epoch and the others die, a local optimum that every
// restart here fell into.
func TestPlanted(t *testing.T) {
	const size, side, n, k = 5, 8, 600, 3
	rng := rand.New(rand.NewPCG(7, 7))
	kernels := randomKernels(rng, k, size, 1.5)
	pix, _ := planted(rng, kernels, nil, n, size, side)
	var truth []float32
	for _, v := range kernels {
		for _, x := range v {
			truth = append(truth, float32(x))
		}
	}
	src, err := dataset.NewImages(pix, n, 1, side, side)
	if err != nil {
		t.Fatal(err)
	}
	for _, ops := range graph.OpSets() {
		t.Run(ops.Name(), func(t *testing.T) {
			// EM is a local method: like any mixture fit, it is restarted from
			// several random θ and the best final LL is kept.
			var res *em.Result
			for seed := uint64(0); seed < 8; seed++ {
				r, err := em.Train(src, em.Settings{Kernels: k, Width: size, Batch: 128, MaxEpochs: 60, Tol: 1e-7, Seed: seed, Ops: ops})
				if err != nil {
					t.Fatal(err)
				}
				monotone(t, r)
				if res == nil || last(r.LogLik) > last(res.LogLik) {
					res = r
				}
			}
			// The planted θ's own LL: the best fit must be at least as likely,
			// up to the last epoch's gain.
			at, err := em.Train(src, em.Settings{Kernels: k, Width: size, Batch: 128, MaxEpochs: 1, Ops: ops,
				Init: tensor.New(tensor.WithShape(k, 1, size, size), tensor.WithBacking(truth))})
			if err != nil {
				t.Fatal(err)
			}
			if last(res.LogLik) < at.LogLik[0]-1e-3*math.Abs(at.LogLik[0]) {
				t.Errorf("best LL %v is below the planted kernels' LL %v", last(res.LogLik), at.LogLik[0])
			}
			// Each pixel is a mean of ~200 unit-variance samples: noise of
			// about 0.07 against kernels of scale 1.5, ≈ 5 % relative.
			match(t, kernels, res.Theta.Data().([]float32), 0.1)
			t.Logf("%d epochs, LL %v → %v", len(res.LogLik), res.LogLik[0], last(res.LogLik))
		})
	}
}

// TestMixing plants three kernels with frequencies 0.6, 0.3 and 0.1 and
// starts EM from the planted kernels with uniform weights: with learned
// mixing weights, EM must stay monotone, recover the frequencies of the
// sample within 0.02 (the posterior that assigns an image to a kernel is
// all but certain at this kernel scale; 0.02 leaves room for the few it is
// not) while the kernels stay where they were planted, and reach a higher
// LL than the uniform-weight fit from the same start.
func TestMixing(t *testing.T) {
	const size, side, n, k = 5, 8, 3000, 3
	freq := []float64{0.6, 0.3, 0.1}
	rng := rand.New(rand.NewPCG(8, 8))
	kernels := randomKernels(rng, k, size, 2)
	pix, count := planted(rng, kernels, freq, n, size, side)
	src, err := dataset.NewImages(pix, n, 1, side, side)
	if err != nil {
		t.Fatal(err)
	}
	var truth []float32
	for _, v := range kernels {
		for _, x := range v {
			truth = append(truth, float32(x))
		}
	}
	s := em.Settings{Kernels: k, Width: size, Batch: 500, MaxEpochs: 10, Mixing: true,
		Init: tensor.New(tensor.WithShape(k, 1, size, size), tensor.WithBacking(truth))}
	res, err := em.Train(src, s)
	if err != nil {
		t.Fatal(err)
	}
	monotone(t, res)
	pick := match(t, kernels, res.Theta.Data().([]float32), 0.1)
	logPrior := res.LogPrior.Data().([]float32)
	for i, j := range pick {
		got, want := math.Exp(float64(logPrior[j])), float64(count[i])/n
		t.Logf("kernel %d: π = %.4f, sample frequency %.4f (planted %.1f)", i, got, want, freq[i])
		if math.Abs(got-want) > 0.02 {
			t.Errorf("kernel %d: learned π = %.4f, sample frequency %.4f", i, got, want)
		}
	}
	s.Mixing = false
	uniform, err := em.Train(src, s)
	if err != nil {
		t.Fatal(err)
	}
	// The uniform fit's LL omits log(1/K) per image; put it back to compare.
	if u := last(uniform.LogLik) - n*math.Log(k); last(res.LogLik) <= u {
		t.Errorf("learned weights LL %v, uniform %v: want higher", last(res.LogLik), u)
	}
}

func last(v []float64) float64 { return v[len(v)-1] }

func TestThetaRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "theta.npy")
	want := em.InitTheta(4, 3, 5, 42)
	if err := em.SaveTheta(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := em.LoadTheta(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Shape().Eq(tensor.Shape{4, 3, 5, 5}) || !slices.Equal(got.Data().([]float32), want.Data().([]float32)) {
		t.Errorf("LoadTheta(SaveTheta(θ)) = %v %v, want θ back", got.Shape(), got.Data().([]float32)[:4])
	}
}

// TestPatchModel runs EM under the patch model (every patch a draw of the
// mixture): its first epoch must give the θ and LL of the same epoch
// computed with float64 loops (posterior over kernels at each position,
// the posterior-weighted patches, the reference's pseudo-count), and its
// LL must never decrease over later epochs, for every op set.
func TestPatchModel(t *testing.T) {
	const size, side, n, k = 5, 8, 150, 4
	rng := rand.New(rand.NewPCG(9, 9))
	pix, _ := planted(rng, randomKernels(rng, 3, size, 1.5), nil, n, size, side)
	src, err := dataset.NewImages(pix, n, 1, side, side)
	if err != nil {
		t.Fatal(err)
	}
	init := make([]float32, k*size*size)
	for i := range init {
		init[i] = float32(0.5 * rng.NormFloat64())
	}
	l := naive.Layer{N: n, C: 1, Rows: side, Cols: side, K: k, Width: size}
	e := l.EPatch(pix, init, nil)
	post := make([]float32, len(e.LogPosterior))
	for i, v := range e.LogPosterior {
		post[i] = float32(math.Exp(v))
	}
	wantTheta, _ := naive.Update(l.Filter(pix, post), e.LogCounts)
	var wantLL, wantFinal float64
	for _, v := range e.LogMarginal {
		wantLL += v
	}
	// The LL of the kernels after the epoch: the next epoch's E-step.
	theta1 := make([]float32, len(wantTheta))
	for i, v := range wantTheta {
		theta1[i] = float32(v)
	}
	for _, v := range l.EPatch(pix, theta1, nil).LogMarginal {
		wantFinal += v
	}
	for _, ops := range graph.OpSets() {
		t.Run(ops.Name(), func(t *testing.T) {
			s := em.Settings{Kernels: k, Width: size, Batch: 64, MaxEpochs: 1, Model: graph.PatchModel, Ops: ops,
				Init: tensor.New(tensor.WithShape(k, 1, size, size), tensor.WithBacking(slices.Clone(init)))}
			var reported []float64 // the LLs of the final pass's end events
			s.Recorder = recordFunc(func(e em.Event) error {
				if e.Final && e.Batch == 0 {
					reported = append(reported, e.LogLik)
				}
				return nil
			})
			one, err := em.Train(src, s)
			if err != nil {
				t.Fatal(err)
			}
			s.Recorder = nil
			if math.Abs(one.LogLik[0]-wantLL) > 1e-5*math.Abs(wantLL) {
				t.Errorf("LL of epoch 1 %v, float64 loops %v", one.LogLik[0], wantLL)
			}
			if one.FinalLogLik == nil || math.Abs(*one.FinalLogLik-wantFinal) > 1e-5*math.Abs(wantFinal) {
				t.Errorf("LL of the kernels after epoch 1 %s, float64 loops %v", orNone(one.FinalLogLik), wantFinal)
			} else if len(reported) != 1 || reported[0] != *one.FinalLogLik {
				t.Errorf("the recorder saw the LL of the trained kernels as %v, want [%v]", reported, *one.FinalLogLik)
			}
			if wantFinal <= wantLL {
				t.Errorf("float64 loops: LL %v after an epoch of EM, %v before: the planted data should let it rise", wantFinal, wantLL)
			}
			// θ: float32 sums of 150·16 posterior-weighted pixels.
			if msg := graphtest.CloseTo(one.Theta.Data().([]float32), wantTheta, 1e-4); msg != "" {
				t.Errorf("θ after epoch 1%s", msg)
			}
			s.MaxEpochs = 8
			s.Init = tensor.New(tensor.WithShape(k, 1, size, size), tensor.WithBacking(slices.Clone(init)))
			more, err := em.Train(src, s)
			if err != nil {
				t.Fatal(err)
			}
			monotone(t, more)
			if last(more.LogLik) <= more.LogLik[0] {
				t.Errorf("LL %v: want a rise over 8 epochs", more.LogLik)
			}
		})
	}
}

// TestStepwise runs stepwise EM (θ updated after every batch) under the
// patch model for two epochs of three batches and compares θ and each
// epoch's LL with the same recursion computed by float64 loops: each
// batch's E-step at the θ of the batch before, its statistics per image
// averaged in with step (t+1)^−α, θ from them scaled to the epoch.
func TestStepwise(t *testing.T) {
	const n, k, batch, alpha = 150, 4, 50, 0.7
	pix, src, init := smallPlanted(t, 10, n, k)
	d := smallSize * smallSize
	theta := slices.Clone(init)
	s := make([]float64, k*d)
	counts := make([]float64, k)
	var wantLL []float64
	step := 0
	for range 2 {
		var ll float64
		for lo := 0; lo < n; lo += batch {
			l := naive.Layer{N: batch, C: 1, Rows: smallSide, Cols: smallSide, K: k, Width: smallSize}
			x := pix[lo*smallSide*smallSide : (lo+batch)*smallSide*smallSide]
			e := l.EPatch(x, theta, nil)
			for _, v := range e.LogMarginal {
				ll += v
			}
			eta := math.Pow(float64(step+1), -alpha)
			step++
			for i, v := range l.Filter(x, exp32(e.LogPosterior)) {
				s[i] = (1-eta)*s[i] + eta*v/batch
			}
			logCounts := make([]float64, k)
			for j, b := range e.LogCounts {
				counts[j] = (1-eta)*counts[j] + eta*math.Exp(b)/batch
				logCounts[j] = math.Log(n * counts[j])
			}
			scaled := make([]float64, len(s))
			for i, v := range s {
				scaled[i] = n * v
			}
			th, _ := naive.Update(scaled, logCounts)
			for i, v := range th {
				theta[i] = float32(v)
			}
		}
		wantLL = append(wantLL, ll)
	}
	matchLoops(t, src, em.Settings{Batch: batch, Model: graph.PatchModel, Stepwise: alpha}, init, wantLL, theta, nil)
}

// TestAnneal trains two epochs with deterministic annealing from β = 0.4
// (epoch 1 at β = 0.4, epoch 2 at β = 1) under both models and compares θ
// and each epoch's LL with float64 loops: the posterior of β·L, then the
// M-step of batch EM.
func TestAnneal(t *testing.T) {
	const n, k, beta = 120, 4, 0.4
	pix, src, init := smallPlanted(t, 11, n, k)
	l := naive.Layer{N: n, C: 1, Rows: smallSide, Cols: smallSide, K: k, Width: smallSize}
	for _, model := range []graph.Model{graph.ImageModel, graph.PatchModel} {
		theta := slices.Clone(init)
		var wantLL []float64
		for _, b := range []float64{beta, 1} {
			lj := l.LogJoint(pix, theta, nil)
			for i := range lj {
				lj[i] *= b
			}
			e := l.EFrom(lj)
			if model == graph.PatchModel {
				e = l.EPatchFrom(lj)
			}
			var ll float64
			for _, v := range e.LogMarginal {
				ll += v
			}
			wantLL = append(wantLL, ll)
			th, _ := naive.Update(l.Filter(pix, exp32(e.LogPosterior)), e.LogCounts)
			for i, v := range th {
				theta[i] = float32(v)
			}
		}
		t.Run(model.String(), func(t *testing.T) {
			matchLoops(t, src, em.Settings{Batch: 50, Model: model, Anneal: beta}, init, wantLL, theta, nil)
		})
	}
}

// The images of smallPlanted: 8×8, with planted 5×5 kernels.
const smallSize, smallSide = 5, 8

// smallPlanted returns n images holding three planted kernels, as pixels
// and as a source, and an initial θ of k random kernels.
func smallPlanted(t *testing.T, seed uint64, n, k int) (pix []float32, src dataset.Source, init []float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	pix, _ = planted(rng, randomKernels(rng, 3, smallSize, 1.5), nil, n, smallSize, smallSide)
	src, err := dataset.NewImages(pix, n, 1, smallSide, smallSide)
	if err != nil {
		t.Fatal(err)
	}
	init = make([]float32, k*smallSize*smallSize)
	for i := range init {
		init[i] = float32(0.5 * rng.NormFloat64())
	}
	return pix, src, init
}

// checkLogLik reports each epoch whose LL is not within a relative 1e-5 of
// the float64 loops' want.
func checkLogLik(t *testing.T, got, want []float64) {
	t.Helper()
	for e, w := range want {
		if math.Abs(got[e]-w) > 1e-5*math.Abs(w) {
			t.Errorf("LL of epoch %d %v, float64 loops %v", e+1, got[e], w)
		}
	}
}

// checkFinal reports a LL of the trained kernels that is not within a
// relative 1e-5 of the float64 loops' want.
func checkFinal(t *testing.T, got *em.Result, want float64) {
	t.Helper()
	if got.FinalLogLik == nil || math.Abs(*got.FinalLogLik-want) > 1e-5*math.Abs(want) {
		t.Errorf("LL of the trained kernels %s, float64 loops %v", orNone(got.FinalLogLik), want)
	}
}

// orNone formats an optional LL.
func orNone(ll *float64) string {
	if ll == nil {
		return "none"
	}
	return fmt.Sprint(*ll)
}

// matchLoops trains len(wantLL) epochs on src from init with s, for every
// op set, and compares each epoch's LL and the last θ with those of float64
// loops; then more, if not nil, checks the rest of the result.
func matchLoops(t *testing.T, src dataset.Source, s em.Settings, init []float32, wantLL []float64, wantTheta []float32, more func(*testing.T, *em.Result)) {
	t.Helper()
	s.Kernels, s.Width, s.MaxEpochs = len(init)/(smallSize*smallSize), smallSize, len(wantLL)
	for _, ops := range graph.OpSets() {
		t.Run(ops.Name(), func(t *testing.T) {
			s.Ops = ops
			s.Init = tensor.New(tensor.WithShape(s.Kernels, 1, smallSize, smallSize), tensor.WithBacking(slices.Clone(init)))
			got, err := em.Train(src, s)
			if err != nil {
				t.Fatal(err)
			}
			checkLogLik(t, got.LogLik, wantLL)
			// θ: float32 sums of posterior-weighted pixels.
			wt := make([]float64, len(wantTheta))
			for i, v := range wantTheta {
				wt[i] = float64(v)
			}
			if msg := graphtest.CloseTo(got.Theta.Data().([]float32), wt, 1e-4); msg != "" {
				t.Errorf("θ after %d epochs%s", len(wantLL), msg)
			}
			if more != nil {
				more(t, got)
			}
		})
	}
}

// exp32 returns exp of each value, in float32: a posterior from its logs.
func exp32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(math.Exp(x))
	}
	return out
}

// varianceLoops runs epochs of EM that learns the patch model's variances
// in float64 loops written from its density, log N(x_u; θ_k, σ_k²I) by
// squared distances (not from the graph's algebra), on n images pix of
// smallPlanted with padding 1, from θ = init (k kernels) and σ² = 1: one
// variance for all kernels (shared) or one per kernel. It returns each
// epoch's LL as calm reports it (for a shared variance, without the
// −½‖x_u‖² of every patch that the paper's LL leaves out; for variances per
// kernel, the whole density), and the last θ and variances.
func varianceLoops(pix, init []float32, n, k, epochs int, shared bool) (wantLL []float64, theta []float32, variances []float64) {
	l := naive.Layer{N: n, C: 1, Rows: smallSide, Cols: smallSide, K: k, Width: smallSize, Pad: 1}
	uh, uw := l.Positions()
	u := uh * uw
	d := float64(smallSize * smallSize)
	norms := l.Distances(pix, make([]float32, k*smallSize*smallSize)) // ‖x_u‖², once per kernel
	theta, variances = slices.Clone(init), make([]float64, k)
	for kk := range variances {
		variances[kk] = 1
	}
	for range epochs {
		dist := l.Distances(pix, theta)
		lj := make([]float64, len(dist))
		for i, v := range dist {
			vk := variances[i/u%k]
			lj[i] = -v/(2*vk) - d/2*math.Log(vk)
		}
		e := l.EPatchFrom(lj)
		ll := 0.0
		for _, v := range e.LogMarginal {
			ll += v
		}
		if shared {
			for i := 0; i < n; i++ {
				for p := 0; p < u; p++ {
					ll += norms[i*k*u+p] / 2
				}
			}
		}
		wantLL = append(wantLL, ll)
		post := exp32(e.LogPosterior)
		th, _ := naive.Update(l.Filter(pix, post), e.LogCounts)
		for i, v := range th {
			theta[i] = float32(v)
		}
		sum, count := make([]float64, k), make([]float64, k)
		for i, v := range l.Distances(pix, theta) {
			sum[i/u%k] += float64(post[i]) * v
			count[i/u%k] += float64(post[i])
		}
		if shared {
			for kk := 1; kk < k; kk++ {
				sum[0] += sum[kk]
				count[0] += count[kk]
			}
			for kk := range sum {
				sum[kk], count[kk] = sum[0], count[0]
			}
		}
		for kk := range variances {
			variances[kk] = sum[kk] / (d * count[kk])
		}
	}
	return wantLL, theta, variances
}

// TestLearnVariance learns the patch model's shared variance σ². Against
// float64 loops (varianceLoops), two epochs must give the same LLs, θ and
// σ²; on images of Gaussian noise of variance 0.25,
// σ² must come close to 0.25 (a few kernels explain little of noise); and
// the LL must never decrease.
func TestLearnVariance(t *testing.T) {
	const n, k = 60, 4
	pix, src, init := smallPlanted(t, 12, n, k)
	wantLL, theta, variances := varianceLoops(pix, init, n, k, 2, true)
	variance := variances[0]
	three, _, _ := varianceLoops(pix, init, n, k, 3, true) // three[2]: the LL of the kernels after 2 epochs
	matchLoops(t, src, em.Settings{Pad: 1, Batch: 25, Model: graph.PatchModel, LearnVariance: true}, init, wantLL, theta, func(t *testing.T, got *em.Result) {
		if math.Abs(got.Variance-variance) > 1e-5*variance {
			t.Errorf("σ² after 2 epochs %v, float64 loops %v", got.Variance, variance)
		}
		checkFinal(t, got, three[2])
	})
	rng := rand.New(rand.NewPCG(13, 13))
	noise := make([]float32, 200*smallSide*smallSide)
	for i := range noise {
		noise[i] = float32(0.5 * rng.NormFloat64())
	}
	nsrc, err := dataset.NewImages(noise, 200, 1, smallSide, smallSide)
	if err != nil {
		t.Fatal(err)
	}
	got, err := em.Train(nsrc, em.Settings{Kernels: k, Width: smallSize, MaxEpochs: 10, Model: graph.PatchModel, LearnVariance: true,
		InitFrom: em.InitKMeansPP, InitSample: 400})
	if err != nil {
		t.Fatal(err)
	}
	monotone(t, got)
	if got.Variance < 0.2 || got.Variance > 0.26 {
		t.Errorf("σ² %v on noise of variance 0.25, want 0.2–0.26", got.Variance)
	}
}

// TestKernelVariances learns a variance per kernel. Against float64
// loops (varianceLoops), two epochs must give the same LLs, θ and σ_k²; on pixels
// drawn from N(−2, 0.2²) and N(2, 1) (kernels of one pixel), EM must find
// both variances, 0.04 and 1; and the LL must never decrease beyond
// rounding.
func TestKernelVariances(t *testing.T) {
	const n, k = 60, 4
	pix, src, init := smallPlanted(t, 14, n, k)
	wantLL, theta, variances := varianceLoops(pix, init, n, k, 2, false)
	three, _, _ := varianceLoops(pix, init, n, k, 3, false)
	matchLoops(t, src, em.Settings{Pad: 1, Batch: 25, Model: graph.PatchModel, KernelVariances: true}, init, wantLL, theta, func(t *testing.T, got *em.Result) {
		checkFinal(t, got, three[2])
		for kk, v := range variances {
			if math.Abs(got.Variances[kk]-v) > 1e-5*v {
				t.Errorf("σ² of kernel %d after 2 epochs %v, float64 loops %v", kk, got.Variances[kk], v)
			}
		}
	})
	rng := rand.New(rand.NewPCG(15, 15))
	two := make([]float32, 200*smallSide*smallSide)
	for i := range two {
		if rng.IntN(2) == 0 {
			two[i] = float32(-2 + 0.2*rng.NormFloat64())
		} else {
			two[i] = float32(2 + rng.NormFloat64())
		}
	}
	tsrc, err := dataset.NewImages(two, 200, 1, smallSide, smallSide)
	if err != nil {
		t.Fatal(err)
	}
	got, err := em.Train(tsrc, em.Settings{Kernels: 2, Width: 1, MaxEpochs: 20, Model: graph.PatchModel, KernelVariances: true,
		InitFrom: em.InitKMeansPP, InitSample: 400})
	if err != nil {
		t.Fatal(err)
	}
	// Until EM converges (5 epochs here) its gains dwarf the rounding; after,
	// the LL wanders within it, which is larger than monotone allows: the
	// narrow kernel's log joint sums terms λ_k·x², 50 a pixel, for a log
	// density of about 1.6, so float32 rounding reaches 1e-5 of the LL.
	head := *got
	head.LogLik = got.LogLik[:6]
	monotone(t, &head)
	for e := 6; e < len(got.LogLik); e++ {
		if got.LogLik[e] < got.LogLik[e-1]-1e-5*math.Abs(got.LogLik[e-1]) {
			t.Errorf("LL decreased from epoch %d to %d beyond rounding: %v → %v", e, e+1, got.LogLik[e-1], got.LogLik[e])
		}
	}
	v := slices.Clone(got.Variances)
	slices.Sort(v)
	if v[0] < 0.034 || v[0] > 0.046 || v[1] < 0.9 || v[1] > 1.1 {
		t.Errorf("σ_k² %v on pixels of variances 0.04 and 1, want 0.034–0.046 and 0.9–1.1", got.Variances)
	}
}
