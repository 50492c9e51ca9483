package mstep

import (
	"fmt"
	"math"
)

// Running holds the sufficient statistics of stepwise (online) EM (Cappé &
// Moulines 2009; Liang & Klein 2009): after the t-th batch (t = 0, 1, …) of
// n_t images, each statistic s moves towards that batch's average per image,
//
//	s ← (1 − η_t)·s + η_t·ŝ_t / n_t,  η_t = (t + 1)^−α,
//
// so the first batch sets s and later ones are averaged in with weights
// that fall as t grows; 1/2 < α ≤ 1 makes the steps sum to infinity and
// their squares to a finite value, which stochastic approximation needs to
// converge. θ is updated from s after every batch: many updates per pass
// over the data instead of one.
type Running struct {
	Numerator []float64 `json:"numerator"`  // S per image, in θ's layout
	LogCounts []float64 `json:"log_counts"` // log of the counts N_k per image
	Updates   int       `json:"updates"`    // batches averaged in so far: t
}

// NewRunning returns empty running statistics for kernels of d values.
func NewRunning(kernels, d int) *Running {
	return &Running{Numerator: make([]float64, kernels*d), LogCounts: make([]float64, kernels)}
}

// Step averages in one batch of n images, its numerator S and log counts b,
// with step size (Updates+1)^−alpha.
func (r *Running) Step(numer, logCounts []float32, n int, alpha float64) error {
	if len(numer) != len(r.Numerator) || len(logCounts) != len(r.LogCounts) || n < 1 {
		return fmt.Errorf("mstep: stepwise statistics of %d images, sizes %d and %d, want sizes %d and %d",
			n, len(numer), len(logCounts), len(r.Numerator), len(r.LogCounts))
	}
	eta := math.Pow(float64(r.Updates+1), -alpha)
	keep, add := 1-eta, eta/float64(n)
	for i, v := range numer {
		r.Numerator[i] = keep*r.Numerator[i] + add*float64(v)
	}
	logKeep, logAdd := math.Log(keep), math.Log(add) // log 0 = −Inf at the first step: s is the batch's
	for k, b := range logCounts {
		if r.Updates == 0 {
			r.LogCounts[k] = logAdd + float64(b)
			continue
		}
		r.LogCounts[k] = logAddExp(logKeep+r.LogCounts[k], logAdd+float64(b))
	}
	r.Updates++
	return nil
}

// Stats returns the running statistics scaled to an epoch of the given
// number of images, for Update: the θ of batch EM once every batch agrees.
func (r *Running) Stats(images int) *Stats {
	s := &Stats{Numerator: make([]float64, len(r.Numerator)), LogCounts: make([]float64, len(r.LogCounts)), Images: images}
	scale := float64(images)
	for i, v := range r.Numerator {
		s.Numerator[i] = scale * v
	}
	for k, b := range r.LogCounts {
		s.LogCounts[k] = b + math.Log(scale)
	}
	return s
}

// Clone returns a copy of r.
func (r *Running) Clone() *Running {
	return &Running{Numerator: append([]float64(nil), r.Numerator...), LogCounts: append([]float64(nil), r.LogCounts...), Updates: r.Updates}
}

// Reseed sets kernel k's statistics to those of the kernel theta (d values)
// with an average count: after the repair re-seeds a kernel, the next
// update starts from the new kernel instead of pulling it back to the
// collapsed one. images is the epoch's, as for Stats.
func (r *Running) Reseed(k int, theta []float32, images int) {
	d := len(theta)
	var sum float64
	for _, b := range r.LogCounts {
		sum += math.Exp(b)
	}
	r.LogCounts[k] = math.Log(sum / float64(len(r.LogCounts)))
	// Update divides by the pseudo-count Ñ_k = (T·N_k + 1)/(T + 1) of the
	// scaled counts N_k = images·exp(b_k); per image, S_k = θ_k·Ñ_k/images.
	var total float64
	for _, b := range r.LogCounts {
		total += float64(images) * math.Exp(b)
	}
	nk := float64(images) * math.Exp(r.LogCounts[k])
	perImage := (total*nk + 1) / (total + 1) / float64(images)
	for i, v := range theta {
		r.Numerator[k*d+i] = float64(v) * perImage
	}
}
