package em_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"calm/em"
	"calm/graph"

	"gorgonia.org/tensor"
)

var opSets = []graph.Ops{graph.Fast{}, graph.Stock{}}

// planted samples n images from the model itself: N(0,1) noise, plus one of
// the kernels added at one uniformly drawn position (pad 0).
func planted(rng *rand.Rand, kernels [][]float64, n, size, side int) []float32 {
	pix := make([]float32, n*side*side)
	for i := range pix {
		pix[i] = float32(rng.NormFloat64())
	}
	u := side - size + 1
	for i := 0; i < n; i++ {
		k := kernels[rng.IntN(len(kernels))]
		y, x := rng.IntN(u), rng.IntN(u)
		for a := 0; a < size; a++ {
			for b := 0; b < size; b++ {
				pix[i*side*side+(y+a)*side+x+b] += float32(k[a*size+b])
			}
		}
	}
	return pix
}

// TestPlanted trains on data sampled from the model with known kernels:
// the log-likelihood must never decrease (EM's defining property) and the
// learned kernels must match the planted ones up to permutation.
//
// Kernels are drawn at the scale of the N(0,1) initial θ: with kernels much
// stronger than that (scale 2 and more), one random kernel takes every
// image in the first epoch and the others die, a local optimum that every
// restart here fell into.
func TestPlanted(t *testing.T) {
	const size, side, n, k = 5, 8, 600, 3
	rng := rand.New(rand.NewPCG(7, 7))
	var kernels [][]float64
	for i := 0; i < k; i++ {
		v := make([]float64, size*size)
		for j := range v {
			v[j] = 1.5 * rng.NormFloat64()
		}
		kernels = append(kernels, v)
	}
	pix := planted(rng, kernels, n, size, side)
	truth := make([]float32, 0, k*size*size)
	for _, v := range kernels {
		for _, x := range v {
			truth = append(truth, float32(x))
		}
	}
	for _, ops := range opSets {
		t.Run(ops.Name(), func(t *testing.T) {
			src, err := em.NewImages(pix, n, 1, side, side)
			if err != nil {
				t.Fatal(err)
			}
			// EM is a local method: like any mixture fit, it is restarted from
			// several random θ and the best final LL is kept.
			var res *em.Result
			for seed := uint64(0); seed < 8; seed++ {
				r, err := em.Train(src, em.Settings{Kernels: k, Size: size, Batch: 128, MaxEpochs: 60, Tol: 1e-7, Seed: seed, Ops: ops})
				if err != nil {
					t.Fatal(err)
				}
				for e := 1; e < len(r.LogLik); e++ {
					// float32 sums over 600 images of log marginals of size ~1e2.
					if r.LogLik[e] < r.LogLik[e-1]-1e-6*math.Abs(r.LogLik[e-1]) {
						t.Errorf("seed %d: LL decreased from epoch %d to %d: %v → %v", seed, e, e+1, r.LogLik[e-1], r.LogLik[e])
					}
				}
				if res == nil || last(r.LogLik) > last(res.LogLik) {
					res = r
				}
			}
			// The planted θ's own LL: the best fit must be at least as likely,
			// up to the last epoch's gain.
			at, err := em.Train(src, em.Settings{Kernels: k, Size: size, Batch: 128, MaxEpochs: 1, Ops: ops,
				Init: tensor.New(tensor.WithShape(k, 1, size, size), tensor.WithBacking(truth))})
			if err != nil {
				t.Fatal(err)
			}
			if last(res.LogLik) < at.LogLik[0]-1e-3*math.Abs(at.LogLik[0]) {
				t.Errorf("best LL %v is below the planted kernels' LL %v", last(res.LogLik), at.LogLik[0])
			}
			got := res.Theta.Data().([]float32)
			used := map[int]bool{}
			for i, want := range kernels {
				best, bestErr := -1, math.Inf(1)
				for j := 0; j < k; j++ {
					var d, norm float64
					for p, w := range want {
						g := float64(got[j*size*size+p])
						d += (g - w) * (g - w)
						norm += w * w
					}
					if rel := math.Sqrt(d / norm); rel < bestErr {
						best, bestErr = j, rel
					}
				}
				// Each pixel is a mean of ~200 unit-variance samples: noise of
				// about 0.07 against kernels of scale 1.5, ≈ 5 % relative.
				if bestErr > 0.1 || used[best] {
					t.Errorf("planted kernel %d: nearest learned kernel %d is off by %.3f (relative), used twice: %v", i, best, bestErr, used[best])
				}
				used[best] = true
			}
			t.Logf("%d epochs, LL %v → %v", len(res.LogLik), res.LogLik[0], res.LogLik[len(res.LogLik)-1])
		})
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
