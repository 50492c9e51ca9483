package em_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/dataset"
	"calm/em"
	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	"gorgonia.org/tensor"
)

// TestStack trains two layers on small planted images, the second on the
// first's posterior over its K₁ = 5 kernels (so C = 5 channels), mean-pooled
// 2×2 and standardised, and checks against float64 loops: the
// standardisation (mean and deviation of each channel), layer 2's input,
// and layer 2's first epoch of EM (its LL and θ after the update, from its
// initial θ); layer 2's LL must never fall.
func TestStack(t *testing.T) {
	const n, side = 120, 10
	rng := rand.New(rand.NewPCG(11, 11))
	kernels := randomKernels(rng, 3, 3, 2)
	pix, _ := planted(rng, kernels, nil, n, 3, side)
	src, err := dataset.NewImages(pix, n, 1, side, side)
	if err != nil {
		t.Fatal(err)
	}
	tr := graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MeanCells}
	var first []*tensor.Dense // layer 2's θ before and after epoch 1
	rec := recordFunc(func(e em.Event) error {
		if e.State != nil && e.Epoch == 1 {
			first = append(first, e.Theta.Clone().(*tensor.Dense))
		}
		return nil
	})
	init2 := em.InitTheta(4, 5, 2, 3)
	layers := []em.StackLayer{
		{Settings: em.Settings{Kernels: 5, Width: 3, Pad: 1, Batch: 50, MaxEpochs: 2, InitFrom: em.InitKMeansPP, InitSample: 200}, Transform: tr},
		{Settings: em.Settings{Kernels: 4, Width: 2, Pad: 0, Batch: 40, MaxEpochs: 4, Init: init2.Clone().(*tensor.Dense), Recorder: rec}},
	}
	st, err := em.TrainStack(src, layers, nil, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	l1 := st.Layers[0]
	c1 := l1.Config
	uh, uw := c1.Positions()
	c2 := st.Layers[1].Config
	if c2.Channels != 5 || c2.Rows != 5 || c2.Cols != 5 {
		t.Fatalf("layer 2 sees %d×%d×%d, want 5×5×5", c2.Channels, c2.Rows, c2.Cols)
	}
	// Layer 1's transformed maps in float64.
	nl := naive.Layer{N: n, C: 1, Rows: side, Cols: side, K: 5, Width: 3, Pad: 1}
	maps := naive.LocalPool(naive.KernelSoftmax(nl.LogJoint(pix, l1.Theta.Data().([]float32), nil), n, 5, uh*uw), uh, uw, 2, "mean")
	per := 25
	// The standardisation, from the first 100 images.
	for c := 0; c < 5; c++ {
		var s, sq float64
		for i := 0; i < 100; i++ {
			for _, v := range maps[(i*5+c)*per : (i*5+c+1)*per] {
				s, sq = s+v, sq+v*v
			}
		}
		mean := s / (100 * float64(per))
		sd := math.Sqrt(sq/(100*float64(per)) - mean*mean)
		if got := float64(l1.Scale[c]); math.Abs(got-1/sd) > 1e-4/sd {
			t.Errorf("channel %d: scale %v, want 1/%v", c, got, sd)
		}
		if got := float64(l1.Shift[c]); math.Abs(got+mean/sd) > 1e-4*(1+mean/sd) {
			t.Errorf("channel %d: shift %v, want %v", c, got, -mean/sd)
		}
	}
	// Layer 2's input.
	x2 := make([]float64, len(maps))
	x2f := make([]float32, len(maps))
	for i, v := range maps {
		c := i / per % 5
		x2[i] = v*float64(l1.Scale[c]) + float64(l1.Shift[c])
		x2f[i] = float32(x2[i])
	}
	in, err := st.Input(src, 1, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	got := make([]float32, n*5*per)
	if err := in.Read(got, 0); err != nil {
		t.Fatal(err)
	}
	if msg := graphtest.CloseTo(got, x2, 1e-4); msg != "" {
		t.Errorf("layer 2's input%s", msg)
	}
	// Layer 2's first epoch: E-step, M-step numerator and update in float64.
	nl2 := naive.Layer{N: n, C: 5, Rows: 5, Cols: 5, K: 4, Width: 2, Pad: 0}
	e := nl2.E(x2f, init2.Data().([]float32), nil)
	post := make([]float32, len(e.LogPosterior))
	for i, v := range e.LogPosterior {
		post[i] = float32(math.Exp(v))
	}
	wantTheta, _ := naive.Update(nl2.Filter(x2f, post), e.LogCounts)
	var ll float64
	for _, v := range e.LogMarginal {
		ll += v
	}
	res2 := st.Layers[1].Result
	if math.Abs(res2.LogLik[0]-ll) > 1e-5*math.Abs(ll) {
		t.Errorf("layer 2, epoch 1: LL %v, want %v", res2.LogLik[0], ll)
	}
	if len(first) != 1 {
		t.Fatalf("recorded %d θ after epoch 1, want 1", len(first))
	}
	if msg := graphtest.CloseTo(first[0].Data().([]float32), wantTheta, 1e-4); msg != "" {
		t.Errorf("layer 2's θ after epoch 1%s", msg)
	}
	monotone(t, res2)
	if !slices.IsSorted(res2.LogLik) {
		t.Errorf("layer 2's LL %v is not rising", res2.LogLik)
	}
}

type recordFunc func(em.Event) error

func (f recordFunc) Record(e em.Event) error { return f(e) }

// TestReceptiveField checks the pixels a position sees against the rows
// counted by hand: the deep preset's layer 2 (5×5 kernels, no padding) on
// layer 1's maps (5×5 kernels, padding 2) max-pooled 2×2.
func TestReceptiveField(t *testing.T) {
	st := &em.Stack{Layers: []em.Trained{
		{Result: &em.Result{Config: graph.Config{Kernels: 4, Width: 5, Pad: 2, Channels: 1, Rows: 28, Cols: 28}},
			Transform: graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MaxCells}},
		{Result: &em.Result{Config: graph.Config{Kernels: 4, Width: 5, Pad: 0, Channels: 4, Rows: 14, Cols: 14}}},
	}}
	for _, tc := range []struct{ l, u, lo, hi int }{
		{0, 0, -2, 2},  // a 5×5 kernel, padded by 2
		{0, 3, 1, 5},   // three positions on
		{1, 0, -2, 11}, // layer 2's input rows 0…4 are layer 1's positions 0…9, pixels −2…11
		{1, 1, 0, 13},  // one position of layer 2 is two of layer 1
	} {
		if lo, hi := st.ReceptiveField(tc.l, tc.u); lo != tc.lo || hi != tc.hi {
			t.Errorf("layer %d, position %d: rows %d…%d, want %d…%d", tc.l+1, tc.u, lo, hi, tc.lo, tc.hi)
		}
	}
	// On whitened 6×6 patches of 32×32 images (27×27 positions, 1×1
	// kernels) max-pooled 3×3, under 3×3 kernels.
	patches := &em.Stack{Whitening: &em.Whitening{Width: 6, Patches: true}, Layers: []em.Trained{
		{Result: &em.Result{Config: graph.Config{Kernels: 4, Width: 1, Channels: 108, Rows: 27, Cols: 27}},
			Transform: graph.Transform{Posterior: true, Pool: 3, Reduce: graph.MaxCells}},
		{Result: &em.Result{Config: graph.Config{Kernels: 4, Width: 3, Channels: 4, Rows: 9, Cols: 9}}},
	}}
	for _, tc := range []struct{ l, u, lo, hi int }{
		{0, 0, 0, 5},    // one position: the 6×6 patch at its corner
		{0, 26, 26, 31}, // the last patch ends at the image's last row
		{1, 0, 0, 13},   // layer 1's positions 0…8, their patches pixels 0…13
		{1, 1, 3, 16},
	} {
		if lo, hi := patches.ReceptiveField(tc.l, tc.u); lo != tc.lo || hi != tc.hi {
			t.Errorf("whitened patches: layer %d, position %d: rows %d…%d, want %d…%d", tc.l+1, tc.u, lo, hi, tc.lo, tc.hi)
		}
	}
}

// TestStackReleasesMaps trains three layers and checks that the maps of
// the layers below each layer (the graphs that make its input) are
// released once that layer is trained, not kept until TrainStack returns.
func TestStackReleasesMaps(t *testing.T) {
	const n, side = 40, 8
	rng := rand.New(rand.NewPCG(12, 12))
	pix, _ := planted(rng, randomKernels(rng, 3, 3, 2), nil, n, 3, side)
	src, err := dataset.NewImages(pix, n, 1, side, side)
	if err != nil {
		t.Fatal(err)
	}
	closed := 0
	defer em.OnMapsClosed(func() { closed++ })()
	tr := graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MeanCells}
	layer := func(k, w, pad int) em.StackLayer {
		return em.StackLayer{Settings: em.Settings{Kernels: k, Width: w, Pad: pad, Batch: 20, MaxEpochs: 1, InitFrom: em.InitKMeansPP, InitSample: 50}, Transform: tr}
	}
	var closedAfter []int // maps closed when each layer's training was done
	layers := []em.StackLayer{layer(4, 3, 1), layer(3, 2, 1), layer(2, 2, 1)}
	_, err = em.TrainStack(src, layers, nil, 20, func(st *em.Stack) error {
		if len(st.Layers) > len(closedAfter) { // called again once a layer is measured
			closedAfter = append(closedAfter, closed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2}; !slices.Equal(closedAfter, want) {
		t.Errorf("maps closed by the end of each layer: %v, want %v", closedAfter, want)
	}
}
