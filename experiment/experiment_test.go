package experiment_test

import (
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio"

	"calm/em"
	"calm/experiment"
	"calm/graph"
)

// bars returns n grey 12×12 images of two classes, a horizontal or a
// vertical bar of 6×2 pixels at a random place, on N(0, 0.1²) noise. The
// pooled features do not see where a pattern is, only what it is.
func bars(rng *rand.Rand, n int) ([]float32, []byte) {
	pix := make([]float32, n*144)
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(rng.IntN(2))
		for p := 0; p < 144; p++ {
			pix[i*144+p] = float32(0.1 * rng.NormFloat64())
		}
		h, w := 2, 6
		if labels[i] == 1 {
			h, w = 6, 2
		}
		y0, x0 := rng.IntN(12-h+1), rng.IntN(12-w+1)
		for y := y0; y < y0+h; y++ {
			for x := x0; x < x0+w; x++ {
				pix[i*144+y*12+x] += 1
			}
		}
	}
	return pix, labels
}

func data(t *testing.T) experiment.Data {
	rng := rand.New(rand.NewPCG(4, 4))
	tp, tl := bars(rng, 200)
	vp, vl := bars(rng, 100)
	train, err := em.NewImages(tp, 200, 1, 12, 12)
	if err != nil {
		t.Fatal(err)
	}
	test, err := em.NewImages(vp, 100, 1, 12, 12)
	if err != nil {
		t.Fatal(err)
	}
	return experiment.Data{Name: "bars", Train: train, Labelled: train, Labels: tl, Test: test, TestLabels: vl, Classes: 2}
}

// TestRun runs a whole experiment on two classes of bars, with every
// output asked for, and checks each.
func TestRun(t *testing.T) {
	out := t.TempDir()
	graphs := filepath.Join(out, "graphs")
	pools := []graph.Pooling{{Reduce: graph.LogSumExpCells, Grid: 2}, graph.ImageWide}
	opt := experiment.Options{Out: out, Eval: true, Pixels: true, Pools: pools, LabelCounts: []int{20, 60}, Features: true, GraphDir: graphs,
		Settings: em.Settings{Kernels: 4, Width: 7, Pad: 0, Batch: 64, MaxEpochs: 3, Mixing: true, Repair: em.Repair{MinCount: 0.5, MaxCosine: 0.99}}}
	m, err := experiment.Run(data(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kernels.png", "loglik.png", "posterior.png", "labels.png"} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := em.LoadTheta(filepath.Join(out, "theta.npy")); err != nil {
		t.Error(err)
	}
	for _, f := range []struct {
		name  string
		shape []int
	}{
		{"features-grid2-train.npy", []int{200, 16}}, {"features-grid2-test.npy", []int{100, 16}},
		{"features-image-train.npy", []int{200, 4}}, {"labels-train.npy", []int{200}}, {"labels-test.npy", []int{100}},
		{"log_prior.npy", []int{4}},
	} {
		r, err := os.Open(filepath.Join(out, f.name))
		if err != nil {
			t.Fatal(err)
		}
		h, err := npyio.NewReader(r)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if !slices.Equal(h.Header.Descr.Shape, f.shape) {
			t.Errorf("%s: shape %v, want %v", f.name, h.Header.Descr.Shape, f.shape)
		}
		r.Close()
	}
	for name, op := range map[string]string{"estep.dot": "FastConv2d/", "mstep.dot": "FastConv2dFilter/"} {
		b, err := os.ReadFile(filepath.Join(graphs, name))
		if err != nil || !strings.HasPrefix(string(b), "strict digraph") || !strings.Contains(string(b), op) {
			t.Errorf("%s: %v; want a DOT graph naming %s, got %.40q", name, err, op, b)
		}
	}
	for _, name := range []string{"config.json", "metrics.json", em.CheckpointFile} {
		raw, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Kernels learn the two bars; their pooled log-likelihoods tell the
	// classes apart wherever the bar is.
	t.Logf("test accuracy %v from the features, %v from the pixels", *m.TestAccuracy, *m.PixelTestAccuracy)
	if *m.TestAccuracy < 0.95 || m.Pooling != "grid2" || len(m.Evaluations) != 2 || m.Evaluations[1].Pooling != "image" {
		t.Errorf("test accuracy %v of pooling %q, evaluations %+v: want ≥ 0.95 from grid2, then image", *m.TestAccuracy, m.Pooling, m.Evaluations)
	}
	if len(m.LogLik) != 3 || m.Images != 200 || m.PeakRSSBytes <= 0 || m.DistinctKernels < 1 || m.TrainSeconds <= 0 || m.ClassifierSeconds <= 0 || m.FeaturesSeconds <= 0 {
		t.Errorf("metrics %+v", m)
	}
	if len(m.Labels) != 3 || m.Labels[0].Labels != 20 || m.Labels[2].Labels != 200 || len(m.Labels[0].Accuracy) != 3 {
		t.Errorf("label study %+v: want 20, 60 and 200 labels, three feature sets each", m.Labels)
	}
	if got := m.Labels[2].Accuracy["grid2"]; got != *m.TestAccuracy {
		t.Errorf("label study on all labels %v, main fit %v: want the same fit", got, *m.TestAccuracy)
	}
	cp, err := em.LoadCheckpoint(out)
	if err != nil || cp.Epoch != 3 {
		t.Errorf("checkpoint: %+v, %v; want epoch 3", cp, err)
	}
	if old, _ := filepath.Glob(filepath.Join(out, "checkpoint-[12].npy")); len(old) != 0 {
		t.Errorf("older checkpoints left behind: %v", old)
	}
	if _, err := os.Stat(filepath.Join(out, ".lock")); !os.IsNotExist(err) {
		t.Errorf("the lock outlived the run: %v", err)
	}
}

// TestRunCancelled cancels before training: the run stops with an
// *InterruptedError and writes no results.
func TestRunCancelled(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := experiment.Run(data(t), experiment.Options{Out: out, Context: ctx,
		Settings: em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 2}})
	var ie *experiment.InterruptedError
	if !errors.As(err, &ie) || ie.Epoch != 0 {
		t.Fatalf("error %v, want an *InterruptedError at epoch 0", err)
	}
	if _, err := os.Stat(filepath.Join(out, "metrics.json")); !os.IsNotExist(err) {
		t.Error("a cancelled run wrote metrics.json")
	}
}

// TestBusy starts a run in a directory another run holds: it must fail
// at once with ErrBusy, naming the other run, and write nothing.
func TestBusy(t *testing.T) {
	out := t.TempDir()
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := experiment.Run(data(t), experiment.Options{Out: out,
			Progress: blockAfterFirstBatch{started, release},
			Settings: em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 1}})
		done <- err
	}()
	<-started
	_, err := experiment.Run(data(t), experiment.Options{Out: out, Settings: em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 1}})
	if !errors.Is(err, experiment.ErrBusy) || !strings.Contains(err.Error(), "process") {
		t.Errorf("second run: %v, want ErrBusy naming the other run's process", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
}

// blockAfterFirstBatch signals started after the first batch and waits for
// release.
type blockAfterFirstBatch struct{ started, release chan struct{} }

func (b blockAfterFirstBatch) Record(e em.Event) error {
	if e.Epoch == 1 && e.Batch == 1 {
		close(b.started)
		<-b.release
	}
	return nil
}

// TestConfigErrors gives settings that cannot run: each must be refused
// as ErrConfig before anything is written.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  experiment.Options
	}{
		{"kernel wider than the image", experiment.Options{Settings: em.Settings{Kernels: 2, Width: 13}}},
		{"negative tolerance", experiment.Options{Settings: em.Settings{Tol: -1}}},
		{"grid wider than the positions", experiment.Options{Settings: em.Settings{Kernels: 2, Width: 10}, Pools: []graph.Pooling{{Grid: 4}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			tc.opt.Out = out
			if _, err := experiment.Run(data(t), tc.opt); !errors.Is(err, experiment.ErrConfig) {
				t.Errorf("error %v, want ErrConfig", err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a refused run created its output directory")
			}
		})
	}
}
