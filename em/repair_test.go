package em_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"calm/dataset"
	"calm/em"
	"calm/graph"

	"gorgonia.org/tensor"
)

// TestRepair starts from three planted kernels of which the second is a
// copy of the first (EM can never split two equal kernels) and a fourth far
// from any data (its expected count falls to zero): the repair must
// re-seed kernels 1 and 3 after the first epoch, each with a patch of the
// data, after which all four are distinct and the LL rises in every epoch
// that does not follow a repair.
func TestRepair(t *testing.T) {
	const size, side, n = 5, 8, 600
	rng := rand.New(rand.NewPCG(9, 9))
	kernels := randomKernels(rng, 3, size, 1.5)
	pix, _ := planted(rng, kernels, nil, n, size, side)
	src, err := dataset.NewImages(pix, n, 1, side, side)
	if err != nil {
		t.Fatal(err)
	}
	d := size * size
	init := make([]float32, 4*d)
	for i, v := range kernels[0] {
		init[i], init[d+i] = float32(v), float32(v)
	}
	for i, v := range kernels[2] {
		init[2*d+i] = float32(v)
	}
	for i := 3 * d; i < 4*d; i++ {
		init[i] = 100
	}
	for _, ops := range graph.OpSets()[:1] {
		s := em.Settings{Kernels: 4, Width: size, Batch: 200, MaxEpochs: 8, Ops: ops, Repair: em.Repair{MinCount: 0.5, MaxCosine: 0.99},
			Init: tensor.New(tensor.WithShape(4, 1, size, size), tensor.WithBacking(slices.Clone(init)))}
		rec := &keep{}
		s.Recorder = rec
		res, err := em.Train(src, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Reseeded) == 0 || res.Reseeded[0].Epoch != 1 || !slices.Equal(res.Reseeded[0].Kernels, []int{1, 3}) {
			t.Fatalf("re-seeded %v, want kernels [1 3] after epoch 1", res.Reseeded)
		}
		cfg := res.Config
		for _, k := range res.Reseeded[0].Kernels {
			if !isPatch(t, rec.states[0].Theta.Data().([]float32)[k*d:(k+1)*d], src, cfg) {
				t.Errorf("re-seeded kernel %d is no patch of the data", k)
			}
		}
		if got := em.Distinct(res.Theta.Data().([]float32), 4, 0.99); got != 4 {
			t.Errorf("%d distinct kernels at the end, want 4", got)
		}
		for _, r := range res.Reseeded {
			if r.Epoch == s.MaxEpochs {
				t.Errorf("re-seeded after the last epoch: %v", res.Reseeded)
			}
		}
		monotone(t, res)
		t.Logf("re-seeded %v; LL %v", res.Reseeded, res.LogLik)
	}
}

// TestDistinct counts planted duplicates.
func TestDistinct(t *testing.T) {
	theta := []float32{1, 0, 0, 1, 2, 0, -1, 0, 0, 0}
	// Kernels (1,0) (0,1) (2,0) (-1,0) (0,0): (2,0) repeats (1,0); the zero
	// kernel has no direction and counts.
	if got := em.Distinct(theta, 5, 0.99); got != 4 {
		t.Errorf("Distinct = %d, want 4", got)
	}
}
