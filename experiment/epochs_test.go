package experiment

import (
	"slices"
	"testing"

	"calm/em"
)

// TestWithTopKernels checks that the kernels of an epoch of the curve come
// with everything of that epoch that the features read (θ, the mixing
// weights, the variances), and that the stack they replace stays as it
// was.
func TestWithTopKernels(t *testing.T) {
	final := em.Layer{Theta: em.InitTheta(2, 1, 3, 1), LogPrior: em.InitTheta(1, 1, 1, 2), Variance: 0.5, Variances: []float64{1, 2}}
	st := &em.Stack{Layers: []em.Trained{{Result: &em.Result{Layer: final}}}}
	cp := &em.Checkpoint{Theta: em.InitTheta(2, 1, 3, 3), LogPrior: em.InitTheta(1, 1, 1, 4), Variance: 0.25, Variances: []float64{3, 4}}
	got := withTopKernels(st, cp).Layers[0]
	if got.Theta != cp.Theta || got.LogPrior != cp.LogPrior || got.Variance != cp.Variance || !slices.Equal(got.Variances, cp.Variances) {
		t.Errorf("layer after epoch: θ %p, π %p, σ² %v, σ_k² %v; want the checkpoint's %p, %p, %v, %v",
			got.Theta, got.LogPrior, got.Variance, got.Variances, cp.Theta, cp.LogPrior, cp.Variance, cp.Variances)
	}
	if l := st.Layers[0]; l.Theta != final.Theta || l.Variance != final.Variance || !slices.Equal(l.Variances, final.Variances) {
		t.Error("withTopKernels changed the stack it was given")
	}
}
