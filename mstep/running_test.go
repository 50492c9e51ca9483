package mstep_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"calm/graph"
	"calm/mstep"
)

// TestRunning averages random batches into running statistics and compares
// them with the stepwise recursion computed directly (float64, counts in
// linear space): s ← (1 − η)s + η·ŝ/n with η = (t+1)^−α, the first batch
// taken whole. Stats must scale them to an epoch, and Reseed must make
// Update return the re-seeded kernel.
func TestRunning(t *testing.T) {
	const kernels, d = 3, 4
	cfg := graph.Config{Kernels: kernels, Width: 2, Channels: 1, Rows: 5, Cols: 5, Batch: 1}
	for _, alpha := range []float64{0.6, 1} {
		rng := rand.New(rand.NewPCG(3, uint64(alpha*10)))
		r := mstep.NewRunning(kernels, d)
		wantS := make([]float64, kernels*d)
		wantN := make([]float64, kernels)
		for t0 := range 5 {
			n := 1 + rng.IntN(20)
			numer := make([]float32, kernels*d)
			for i := range numer {
				numer[i] = float32(rng.NormFloat64() * float64(n))
			}
			logCounts := make([]float32, kernels)
			for k := range logCounts {
				logCounts[k] = float32(math.Log(float64(n) * (0.1 + rng.Float64())))
			}
			if err := r.Step(numer, logCounts, n, alpha); err != nil {
				t.Fatal(err)
			}
			eta := 1 / math.Pow(float64(t0+1), alpha)
			for i, v := range numer {
				wantS[i] = (1-eta)*wantS[i] + eta*float64(v)/float64(n)
			}
			for k, b := range logCounts {
				wantN[k] = (1-eta)*wantN[k] + eta*math.Exp(float64(b))/float64(n)
			}
		}
		for i, w := range wantS {
			if g := r.Numerator[i]; math.Abs(g-w) > 1e-12*(1+math.Abs(w)) {
				t.Errorf("α %v: S[%d] = %v, want %v", alpha, i, g, w)
			}
		}
		for k, w := range wantN {
			if g := math.Exp(r.LogCounts[k]); math.Abs(g-w) > 1e-12*w {
				t.Errorf("α %v: N[%d] = %v, want %v", alpha, k, g, w)
			}
		}
		if r.Updates != 5 {
			t.Errorf("α %v: %d updates, want 5", alpha, r.Updates)
		}
		const images = 1000
		s := r.Stats(images)
		if g, w := s.Numerator[5], images*wantS[5]; math.Abs(g-w) > 1e-12*math.Abs(w) {
			t.Errorf("α %v: scaled S[5] = %v, want %v", alpha, g, w)
		}
		if g, w := math.Exp(s.LogCounts[1]), images*wantN[1]; math.Abs(g-w) > 1e-9*w {
			t.Errorf("α %v: scaled N[1] = %v, want %v", alpha, g, w)
		}
		kernel := []float32{1.5, -2, 0.25, 3}
		r.Reseed(1, kernel, images)
		theta, _, err := mstep.Update(cfg, r.Stats(images))
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range kernel {
			if g := theta.Data().([]float32)[d+i]; math.Abs(float64(g-w)) > 1e-6 {
				t.Errorf("α %v: re-seeded kernel value %d = %v, want %v", alpha, i, g, w)
			}
		}
	}
	r := mstep.NewRunning(kernels, d)
	if err := r.Step(make([]float32, 2), make([]float32, kernels), 1, 0.6); err == nil {
		t.Error("a numerator of the wrong size was accepted")
	}
}
