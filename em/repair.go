package em

import (
	"fmt"
	"math"
	"slices"

	"calm/dataset"
	"calm/graph"
)

// Distinct returns the number of distinct kernels of θ (K kernels of d
// values): going through them in order, a kernel counts unless its cosine
// similarity with a kernel already counted is maxCos (> 0) or more, which
// is the repair's duplicate test. The issue that motivated it counts with
// maxCos = 0.99.
func Distinct(theta []float32, k int, maxCos float64) int {
	return k - len(collapsed(theta, make([]float64, k), Repair{MaxCosine: maxCos}))
}

// cosine returns the cosine similarity of a and b, 0 if either is zero.
func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// collapsed returns, in increasing order, the kernels r counts as
// collapsed: an expected count below r.MinCount, or a cosine of r.MaxCosine
// or more with a lower kernel that is not itself collapsed.
func collapsed(theta []float32, counts []float64, r Repair) []int {
	k := len(counts)
	d := len(theta) / k
	var bad []int
	for i := 0; i < k; i++ {
		if r.MinCount > 0 && counts[i] < r.MinCount {
			bad = append(bad, i)
			continue
		}
		if r.MaxCosine <= 0 {
			continue
		}
		for j := 0; j < i; j++ {
			if !slices.Contains(bad, j) && cosine(theta[i*d:(i+1)*d], theta[j*d:(j+1)*d]) >= r.MaxCosine {
				bad = append(bad, i)
				break
			}
		}
	}
	return bad
}

// worstImages keeps the indices of the images with the lowest log
// marginal ℓ seen so far, at most cap of them, lowest first (ties by
// index).
type worstImages struct {
	cap   int
	index []int
	ell   []float64
}

func (w *worstImages) add(index int, ell float64) {
	if len(w.index) == w.cap && ell >= w.ell[len(w.ell)-1] {
		return
	}
	at := len(w.ell)
	for at > 0 && w.ell[at-1] > ell {
		at--
	}
	w.index = slices.Insert(w.index, at, index)
	w.ell = slices.Insert(w.ell, at, ell)
	if len(w.index) > w.cap {
		w.index, w.ell = w.index[:w.cap], w.ell[:w.cap]
	}
}

// reseed replaces each kernel of bad in θ by a patch the model explains
// worst: from the images with the lowest ℓ, in turn, the patch farthest (in
// squared distance) from its nearest kernel, the kernels being the ones not
// in bad and those already re-seeded. logPrior, when not nil, gives each
// re-seeded kernel the weight 1/K, and is renormalised.
func reseed(theta, logPrior []float32, bad []int, worst []int, src dataset.Source, cfg graph.Config) error {
	if len(bad) == 0 {
		return nil
	}
	if len(worst) == 0 {
		return fmt.Errorf("em: repair: no images to re-seed from")
	}
	d := cfg.KernelLen()
	uh, uw := cfg.Positions()
	live := make([]bool, cfg.Kernels)
	for k := range live {
		live[k] = !slices.Contains(bad, k)
	}
	img := make([]float32, cfg.ImageLen())
	patch := make([]float32, d)
	for i, k := range bad {
		if err := src.Read(img, worst[i%len(worst)]); err != nil {
			return fmt.Errorf("em: repair: %w", err)
		}
		bestY, bestX, bestDist := 0, 0, -1.0
		for y := 0; y < uh; y++ {
			for x := 0; x < uw; x++ {
				cutPatch(patch, img, cfg, y, x)
				nearest := math.Inf(1)
				for j, ok := range live {
					if !ok {
						continue
					}
					var s float64
					for e, v := range theta[j*d : (j+1)*d] {
						dv := float64(patch[e] - v)
						s += dv * dv
					}
					nearest = math.Min(nearest, s)
				}
				if nearest > bestDist {
					bestY, bestX, bestDist = y, x, nearest
				}
			}
		}
		cutPatch(theta[k*d:(k+1)*d], img, cfg, bestY, bestX)
		live[k] = true
	}
	if logPrior != nil {
		var total float64
		for k, v := range logPrior {
			if slices.Contains(bad, k) {
				v = float32(-math.Log(float64(cfg.Kernels)))
			}
			total += math.Exp(float64(v))
		}
		for k := range logPrior {
			if slices.Contains(bad, k) {
				logPrior[k] = float32(-math.Log(float64(cfg.Kernels)))
			}
			logPrior[k] = float32(float64(logPrior[k]) - math.Log(total))
		}
	}
	return nil
}
