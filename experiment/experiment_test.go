package experiment_test

import (
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

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

// TestRun runs a whole experiment on two classes of bars and checks every
// output.
func TestRun(t *testing.T) {
	out := t.TempDir()
	opt := experiment.Options{Out: out, Eval: true, Pixels: true,
		Settings: em.Settings{Kernels: 4, Size: 7, Pad: 0, Batch: 64, MaxEpochs: 3, Ops: graph.Fast{}}}
	m, err := experiment.Run(data(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kernels.png", "loglik.png", "posterior.png"} {
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
	for _, name := range []string{"config.json", "metrics.json", experiment.CheckpointFile} {
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
	if *m.TestAccuracy < 0.95 {
		t.Errorf("test accuracy %v from the features, want ≥ 0.95", *m.TestAccuracy)
	}
	if len(m.LogLik) != 3 || m.Images != 200 || m.PeakRSSBytes <= 0 {
		t.Errorf("metrics %+v", m)
	}
	cp, err := experiment.LoadCheckpoint(out)
	if err != nil || cp.Epoch != 3 {
		t.Errorf("checkpoint: %+v, %v; want epoch 3", cp, err)
	}
	if old, _ := filepath.Glob(filepath.Join(out, "checkpoint-[12].npy")); len(old) != 0 {
		t.Errorf("older checkpoints left behind: %v", old)
	}
}

// TestRunCancelled cancels before training: the run stops with an
// *InterruptedError and writes no results.
func TestRunCancelled(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := experiment.Run(data(t), experiment.Options{Out: out, Context: ctx,
		Settings: em.Settings{Kernels: 2, Size: 5, Batch: 64, MaxEpochs: 2}})
	var ie *experiment.InterruptedError
	if !errors.As(err, &ie) || ie.Epoch != 0 || experiment.ExitCode(err) != 130 {
		t.Fatalf("error %v, want an *InterruptedError at epoch 0", err)
	}
	if _, err := os.Stat(filepath.Join(out, "metrics.json")); !os.IsNotExist(err) {
		t.Error("a cancelled run wrote metrics.json")
	}
}
