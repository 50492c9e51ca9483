package em_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"calm/em"
	"calm/graph"

	"gorgonia.org/tensor"
)

func smallSource(t *testing.T) em.Source {
	t.Helper()
	rng := rand.New(rand.NewPCG(21, 22))
	pix := make([]float32, 250*2*9*9)
	for i := range pix {
		pix[i] = rng.Float32()
	}
	src, err := em.NewImages(pix, 250, 2, 9, 9)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// keep records a copy of every epoch's checkpoint.
type keep struct{ states []em.Checkpoint }

func (k *keep) Record(e em.Event) error {
	if e.State != nil {
		k.states = append(k.states, em.Checkpoint{
			Epoch: e.State.Epoch, LogLik: slices.Clone(e.State.LogLik),
			EpochSeconds: slices.Clone(e.State.EpochSeconds), Theta: e.State.Theta.Clone().(*tensor.Dense),
		})
	}
	return nil
}

// TestResume stops a run after each epoch in turn and resumes it from that
// checkpoint: θ and the log-likelihoods must equal, bit for bit, those of
// the uninterrupted run.
func TestResume(t *testing.T) {
	src := smallSource(t)
	for _, ops := range opSets {
		t.Run(ops.Name(), func(t *testing.T) {
			s := em.Settings{Kernels: 5, Size: 4, Pad: 1, Batch: 64, MaxEpochs: 4, Seed: 3, Ops: ops}
			rec := &keep{}
			s.Recorder = rec
			full, err := em.Train(src, s)
			if err != nil {
				t.Fatal(err)
			}
			for _, cp := range rec.states[:3] {
				r := s
				r.Recorder, r.Resume = nil, &cp
				got, err := em.Train(src, r)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.LogLik, full.LogLik) {
					t.Errorf("resumed after epoch %d: LL %v, uninterrupted %v", cp.Epoch, got.LogLik, full.LogLik)
				}
				if !slices.Equal(got.Theta.Data().([]float32), full.Theta.Data().([]float32)) {
					t.Errorf("resumed after epoch %d: θ differs from the uninterrupted run", cp.Epoch)
				}
			}
		})
	}
}

// TestDeterministic trains with one and with two threads: parallel work
// is split independently of GOMAXPROCS, so θ and LL must be identical.
func TestDeterministic(t *testing.T) {
	src := smallSource(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, ops := range opSets {
		t.Run(ops.Name(), func(t *testing.T) {
			var runs []*em.Result
			for _, procs := range []int{1, 2} {
				runtime.GOMAXPROCS(procs)
				res, err := em.Train(src, em.Settings{Kernels: 6, Size: 5, Pad: 2, Batch: 100, MaxEpochs: 3, Seed: 9, Ops: ops})
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, res)
			}
			if !slices.Equal(runs[0].LogLik, runs[1].LogLik) || !slices.Equal(runs[0].Theta.Data().([]float32), runs[1].Theta.Data().([]float32)) {
				t.Errorf("GOMAXPROCS=1 and =2 differ: LL %v and %v", runs[0].LogLik, runs[1].LogLik)
			}
		})
	}
}

type cancelAfter struct {
	epoch  int
	cancel context.CancelFunc
}

func (c cancelAfter) Record(e em.Event) error {
	if e.Epoch == c.epoch && e.Batch == 2 {
		c.cancel()
	}
	return nil
}

func TestContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := em.Train(smallSource(t), em.Settings{Kernels: 3, Size: 3, Batch: 50, MaxEpochs: 5, Ops: graph.Fast{},
		Context: ctx, Recorder: cancelAfter{epoch: 2, cancel: cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestNonFinite gives NaN and Inf in the data or in θ: training must stop
// at once with an error that names the image or the kernel.
func TestNonFinite(t *testing.T) {
	pix := make([]float32, 40*36)
	pix[17*36+5] = float32(math.NaN())
	src, err := em.NewImages(pix, 40, 1, 6, 6)
	if err != nil {
		t.Fatal(err)
	}
	_, err = em.Train(src, em.Settings{Kernels: 2, Size: 3, Batch: 16, MaxEpochs: 1})
	if err == nil || !strings.Contains(err.Error(), "image 17 holds NaN") {
		t.Errorf("NaN in image 17: %v", err)
	}
	pix[17*36+5] = 0
	theta := em.InitTheta(2, 1, 3, 1)
	theta.Data().([]float32)[9+4] = float32(math.Inf(1))
	_, err = em.Train(src, em.Settings{Kernels: 2, Size: 3, Batch: 16, MaxEpochs: 1, Init: theta})
	if err == nil || !strings.Contains(err.Error(), "+Inf in kernel 1") {
		t.Errorf("Inf in kernel 1: %v", err)
	}
}
