package em_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"calm/dataset"
	"calm/em"
	"calm/graph"
	"calm/mstep"

	"gorgonia.org/tensor"
)

func smallSource(t *testing.T) dataset.Source {
	t.Helper()
	rng := rand.New(rand.NewPCG(21, 22))
	pix := make([]float32, 250*2*9*9)
	for i := range pix {
		pix[i] = rng.Float32()
	}
	src, err := dataset.NewImages(pix, 250, 2, 9, 9)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// keep records a copy of every epoch's checkpoint.
type keep struct{ states []em.Checkpoint }

func (k *keep) Record(e em.Event) error {
	if e.State != nil {
		cp := *e.State
		cp.LogLik, cp.EpochSeconds, cp.Reseeded = slices.Clone(cp.LogLik), slices.Clone(cp.EpochSeconds), slices.Clone(cp.Reseeded)
		cp.Theta = cp.Theta.Clone().(*tensor.Dense)
		if cp.Running != nil {
			cp.Running = cp.Running.Clone()
		}
		if cp.LogPrior != nil {
			cp.LogPrior = cp.LogPrior.Clone().(*tensor.Dense)
		}
		k.states = append(k.states, cp)
	}
	return nil
}

// TestResume stops a run after each epoch in turn and resumes it from that
// checkpoint, saved to disk and read back: θ, the mixing weights, the
// repairs and the log-likelihoods must equal, bit for bit, those of the
// uninterrupted run, for every op set, with every option on, by batch and
// by stepwise EM (whose running statistics the checkpoint carries).
func TestResume(t *testing.T) {
	src := smallSource(t)
	for _, ops := range graph.OpSets() {
		for _, tc := range []struct {
			name   string
			change func(*em.Settings)
		}{
			{"batch", func(*em.Settings) {}},
			{"stepwise", func(s *em.Settings) { s.Stepwise = 0.6 }},
			{"variance", func(s *em.Settings) { s.Model, s.LearnVariance = graph.PatchModel, true }},
			{"kernel variances", func(s *em.Settings) { s.Model, s.KernelVariances = graph.PatchModel, true }},
		} {
			t.Run(ops.Name()+"/"+tc.name, func(t *testing.T) {
				s := em.Settings{Kernels: 5, Width: 4, Pad: 1, Batch: 64, MaxEpochs: 4, Seed: 3, Ops: ops,
					InitFrom: em.InitKMeansPP, InitSample: 500, Mixing: true, Repair: em.Repair{MinCount: 1, MaxCosine: 0.9}}
				tc.change(&s)
				testResume(t, src, s)
			})
		}
	}
}

func testResume(t *testing.T, src dataset.Source, s em.Settings) {
	rec := &keep{}
	s.Recorder = rec
	full, err := em.Train(src, s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prev := ""
	for _, cp := range rec.states[:3] {
		if prev, err = em.SaveCheckpoint(dir, &cp, prev); err != nil {
			t.Fatal(err)
		}
		back, err := em.LoadCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		r := s
		r.Recorder, r.Resume = nil, back
		got, err := em.Train(src, r)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.LogLik, full.LogLik) {
			t.Errorf("resumed after epoch %d: LL %v, uninterrupted %v", cp.Epoch, got.LogLik, full.LogLik)
		}
		if got.FinalLogLik == nil || full.FinalLogLik == nil || *got.FinalLogLik != *full.FinalLogLik {
			t.Errorf("resumed after epoch %d: LL of the trained kernels %s, uninterrupted %s", cp.Epoch, orNone(got.FinalLogLik), orNone(full.FinalLogLik))
		}
		if !slices.Equal(got.Theta.Data().([]float32), full.Theta.Data().([]float32)) ||
			!slices.Equal(got.LogPrior.Data().([]float32), full.LogPrior.Data().([]float32)) {
			t.Errorf("resumed after epoch %d: θ or π differs from the uninterrupted run", cp.Epoch)
		}
		if got.Variance != full.Variance || !slices.Equal(got.Variances, full.Variances) {
			t.Errorf("resumed after epoch %d: σ² %v %v, uninterrupted %v %v", cp.Epoch, got.Variance, got.Variances, full.Variance, full.Variances)
		}
		if !reflect.DeepEqual(got.Reseeded, full.Reseeded) {
			t.Errorf("resumed after epoch %d: repairs %v, uninterrupted %v", cp.Epoch, got.Reseeded, full.Reseeded)
		}
	}
	if old, _ := filepath.Glob(filepath.Join(dir, "checkpoint-[12].npy")); len(old) != 0 {
		t.Errorf("older checkpoints left behind: %v", old)
	}
}

// TestDeterministic trains with one, two and three threads: parallel work
// is split independently of GOMAXPROCS, so θ and LL must be identical.
func TestDeterministic(t *testing.T) {
	src := smallSource(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, ops := range graph.OpSets() {
		t.Run(ops.Name(), func(t *testing.T) {
			var runs []*em.Result
			for _, procs := range []int{1, 2, 3} {
				runtime.GOMAXPROCS(procs)
				res, err := em.Train(src, em.Settings{Kernels: 6, Width: 5, Pad: 2, Batch: 100, MaxEpochs: 3, Seed: 9, Ops: ops})
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, res)
			}
			for i, r := range runs[1:] {
				if !slices.Equal(runs[0].LogLik, r.LogLik) || !slices.Equal(runs[0].Theta.Data().([]float32), r.Theta.Data().([]float32)) {
					t.Errorf("GOMAXPROCS=1 and =%d differ: LL %v and %v", i+2, runs[0].LogLik, r.LogLik)
				}
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
	_, err := em.Train(smallSource(t), em.Settings{Kernels: 3, Width: 3, Batch: 50, MaxEpochs: 5,
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
	src, err := dataset.NewImages(pix, 40, 1, 6, 6)
	if err != nil {
		t.Fatal(err)
	}
	_, err = em.Train(src, em.Settings{Kernels: 2, Width: 3, Batch: 16, MaxEpochs: 1})
	if err == nil || !strings.Contains(err.Error(), "image 17 holds NaN") {
		t.Errorf("NaN in image 17: %v", err)
	}
	pix[17*36+5] = 0
	theta := em.InitTheta(2, 1, 3, 1)
	theta.Data().([]float32)[9+4] = float32(math.Inf(1))
	_, err = em.Train(src, em.Settings{Kernels: 2, Width: 3, Batch: 16, MaxEpochs: 1, Init: theta})
	if err == nil || !strings.Contains(err.Error(), "+Inf in kernel 1") {
		t.Errorf("Inf in kernel 1: %v", err)
	}
}

// TestCheckpointErrors resumes from checkpoints that do not fit: each must
// be refused with an error that says why, before any training.
func TestCheckpointErrors(t *testing.T) {
	src := smallSource(t)
	s := em.Settings{Kernels: 5, Width: 4, Pad: 1, Batch: 64, MaxEpochs: 3}
	good := em.Checkpoint{Epoch: 1, LogLik: []float64{1}, EpochSeconds: []float64{1}, Theta: em.InitTheta(5, 2, 4, 1), Images: 250}
	for _, tc := range []struct {
		name   string
		change func(*em.Checkpoint)
		msg    string
	}{
		{"another shape", func(c *em.Checkpoint) { c.Theta = em.InitTheta(5, 2, 3, 1) }, "kernels of shape"},
		{"other data", func(c *em.Checkpoint) { c.Images = 300 }, "taken on 300 images"},
		{"epochs beyond the run", func(c *em.Checkpoint) { c.Epoch, c.LogLik, c.EpochSeconds = 4, make([]float64, 4), make([]float64, 4) }, "does not fit 3 epochs"},
		{"history of the wrong length", func(c *em.Checkpoint) { c.LogLik = nil }, "0 log-likelihoods"},
		{"weights of the wrong size", func(c *em.Checkpoint) { c.LogPrior = em.InitTheta(1, 1, 2, 1) }, "mixing weights"},
		{"another padding", func(c *em.Checkpoint) {
			c.Config = graph.Config{Kernels: 5, Width: 4, Pad: 2, Channels: 2, Rows: 9, Cols: 9}
		}, "the run trains"},
		{"another model", func(c *em.Checkpoint) {
			c.Config = graph.Config{Kernels: 5, Width: 4, Pad: 1, Channels: 2, Rows: 9, Cols: 9, Model: graph.PatchModel}
		}, "the run trains"},
		{"stepwise statistics for batch EM", func(c *em.Checkpoint) { c.Running = mstep.NewRunning(5, 2*4*4) }, "taken by stepwise EM"},
		{"a variance the run does not learn", func(c *em.Checkpoint) { c.Variance = 0.5 }, "the run learns it: false"},
		{"variances the run does not learn", func(c *em.Checkpoint) { c.Variances = []float64{1, 1, 1, 1, 1} }, "the run learns one per kernel: false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := good
			tc.change(&cp)
			r := s
			r.Resume = &cp
			if _, err := em.Train(src, r); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v, want one that says %q", err, tc.msg)
			}
		})
	}
	dir := t.TempDir()
	if _, err := em.LoadCheckpoint(dir); !errors.Is(err, em.ErrNoCheckpoint) {
		t.Errorf("empty directory: %v, want ErrNoCheckpoint", err)
	}
	if err := os.WriteFile(filepath.Join(dir, em.CheckpointFile), []byte(`{"epoch": 1, "theta": "../x.npy"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := em.LoadCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "beside it") {
		t.Errorf("θ outside the directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, em.CheckpointFile), []byte(`{"epoch": 1,`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := em.LoadCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "unexpected end of JSON") {
		t.Errorf("truncated record: %v", err)
	}
	// A recorded variance that is not a variance.
	dir = t.TempDir()
	cp := good
	cp.Variance = 0.123456
	if _, err := em.SaveCheckpoint(dir, &cp, ""); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, em.CheckpointFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(raw, []byte("0.123456"), []byte("-1"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := em.LoadCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "variance -1") {
		t.Errorf("negative variance: %v", err)
	}
	// Variances per kernel: one too few, and one that is not a variance.
	for _, tc := range []struct{ old, new, msg string }{
		{"0.25,", "", "4 variances for 5 kernels"},
		{"0.25", "0", "variance 0 of kernel 1"},
	} {
		dir = t.TempDir()
		cp = good
		cp.Config = graph.Config{Kernels: 5, Width: 4, Pad: 1, Channels: 2, Rows: 9, Cols: 9, Model: graph.PatchModel, KernelVariances: true}
		cp.Variances = []float64{0.5, 0.25, 1, 2, 3}
		if _, err := em.SaveCheckpoint(dir, &cp, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := em.LoadCheckpoint(dir); err != nil {
			t.Fatalf("a checkpoint with variances per kernel: %v", err)
		}
		path = filepath.Join(dir, em.CheckpointFile)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, bytes.Replace(raw, []byte(tc.old), []byte(tc.new), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := em.LoadCheckpoint(dir); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("variances edited %q → %q: %v, want an error that says %q", tc.old, tc.new, err, tc.msg)
		}
	}
}

// TestStop has a recorder stop training after epoch 2 of 5: the two
// epochs are kept as if they were all, the LL of their kernels is measured,
// the recorder after the one that stopped still sees the event, and the
// θ is the one an uninterrupted run has after 2 epochs. A Stop from any
// other event is an error.
func TestStop(t *testing.T) {
	src := smallSource(t)
	base := em.Settings{Kernels: 6, Width: 5, Pad: 2, Batch: 100, Seed: 9}
	two := base
	two.MaxEpochs = 2
	want, err := em.Train(src, two)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int // epochs the second recorder saw end
	s := base
	s.MaxEpochs = 5
	s.Recorder = em.Recorders{
		recordFunc(func(e em.Event) error {
			if e.State != nil && e.Epoch == 2 {
				return fmt.Errorf("enough: %w", em.Stop)
			}
			return nil
		}),
		recordFunc(func(e em.Event) error {
			if e.State != nil {
				seen = append(seen, e.Epoch)
			}
			return nil
		}),
	}
	got, err := em.Train(src, s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != em.Stopped || len(got.LogLik) != 2 || got.FinalLogLik == nil {
		t.Fatalf("status %v after %d epochs (final LL %v), want stopped after 2 with the LL of its kernels", got.Status, len(got.LogLik), got.FinalLogLik)
	}
	if !slices.Equal(seen, []int{1, 2}) {
		t.Errorf("the next recorder saw epochs %v end, want [1 2]", seen)
	}
	if !slices.Equal(got.LogLik, want.LogLik) || !slices.Equal(got.Theta.Data().([]float32), want.Theta.Data().([]float32)) || *got.FinalLogLik != *want.FinalLogLik {
		t.Errorf("stopped after 2 epochs: LL %v, want %v (a run of 2 epochs), or θ differs", got.LogLik, want.LogLik)
	}
	s.Recorder = recordFunc(func(e em.Event) error {
		if e.Batch == 1 {
			return em.Stop
		}
		return nil
	})
	if _, err := em.Train(src, s); !errors.Is(err, em.Stop) {
		t.Errorf("a Stop in the middle of an epoch: %v, want the error back", err)
	}
}
