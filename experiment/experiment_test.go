package experiment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"codeberg.org/sbinet/npyio"

	"calm/classify"
	"calm/dataset"
	"calm/em"
	"calm/estep"
	"calm/experiment"
	"calm/experiment/rundir"
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
	train, err := dataset.NewImages(tp, 200, 1, 12, 12)
	if err != nil {
		t.Fatal(err)
	}
	test, err := dataset.NewImages(vp, 100, 1, 12, 12)
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
	opt := experiment.Options{Out: out, Eval: true, Pixels: true, Pools: pools, LabelCounts: []int{20, 60}, Features: true, GraphDir: graphs, Validation: 50, EpochCurve: true, PickEpoch: true,
		Layers: []em.StackLayer{{Settings: em.Settings{Kernels: 4, Width: 7, Pad: 0, Batch: 64, MaxEpochs: 3, Mixing: true, Repair: em.Repair{MinCount: 0.5, MaxCosine: 0.99}}}}}
	m, err := experiment.Run(data(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kernels-1.png", "loglik.png", "posterior.png", "labels.png", "epochs.png"} {
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
	if st, err := em.LoadStack(out); err != nil || len(st.Layers) != 1 || st.Layers[0].LogPrior == nil {
		t.Errorf("model: %+v, %v; want one layer with mixing weights", st, err)
	}
	for _, f := range []struct {
		name  string
		shape []int
	}{
		{"features-lse2-train.npy", []int{200, 16}}, {"features-lse2-test.npy", []int{100, 16}},
		{"features-image-train.npy", []int{200, 4}}, {"labels-train.npy", []int{200}}, {"labels-test.npy", []int{100}},
		{"theta-1.npy", []int{4, 1, 7, 7}},
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
	for name, op := range map[string]string{"estep-1.dot": "FastConv2dPosterior/", "mstep-1.dot": "FastConv2dFilter/"} {
		b, err := os.ReadFile(filepath.Join(graphs, name))
		if err != nil || !strings.HasPrefix(string(b), "strict digraph") || !strings.Contains(string(b), op) {
			t.Errorf("%s: %v; want a DOT graph naming %s, got %.40q", name, err, op, b)
		}
	}
	for _, name := range []string{"config.json", "metrics.json", em.ModelFile, filepath.Join("layer-1", em.CheckpointFile)} {
		raw, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if bad := notSnakeCase(v, ""); len(bad) > 0 {
			t.Errorf("%s: keys not in snake_case: %v", name, bad)
		}
	}
	// Kernels learn the two bars; their pooled log-likelihoods tell the
	// classes apart wherever the bar is.
	t.Logf("test accuracy %v from the features, %v from the pixels", *m.TestAccuracy, *m.PixelTestAccuracy)
	if *m.TestAccuracy < 0.95 || len(m.Evaluations) != 2 || m.Evaluations[0].Pooling != "lse2" || m.Evaluations[1].Pooling != "image" {
		t.Errorf("test accuracy %v of pooling %q, evaluations %+v: want ≥ 0.95, from lse2, then image", *m.TestAccuracy, m.Pooling, m.Evaluations)
	}
	// The main feature set is the one that validates best.
	bestSet := m.Evaluations[0]
	if v1 := *m.Evaluations[1].ValidationAccuracy; v1 > *bestSet.ValidationAccuracy {
		bestSet = m.Evaluations[1]
	}
	if m.Pooling != bestSet.Pooling || *m.ValidationAccuracy != *bestSet.ValidationAccuracy || m.ValidationImages != 50 || m.PixelValidationAccuracy == nil {
		t.Errorf("main feature set %s (validation %v), evaluations %+v: want %s", m.Pooling, *m.ValidationAccuracy, m.Evaluations, bestSet.Pooling)
	}
	if len(m.Epochs) != 4 || m.Epochs[0].Epoch != 0 || m.Epochs[3].Epoch != 3 || m.Epochs[0].C != 1 {
		t.Errorf("epoch curve %+v: want epochs 0 to 3, C = 1", m.Epochs)
	}
	// The kernels kept are those of the first epoch that validates best.
	best := 0
	for i, p := range m.Epochs {
		if p.ValidationAccuracy > m.Epochs[best].ValidationAccuracy {
			best = i
		}
	}
	if m.ChosenEpoch == nil || *m.ChosenEpoch != m.Epochs[best].Epoch {
		t.Errorf("chosen epoch %v, the curve %+v", m.ChosenEpoch, m.Epochs)
	} else {
		kept, err := em.LoadTheta(filepath.Join(out, "theta-1.npy"))
		if err != nil {
			t.Fatal(err)
		}
		var want []float32
		if e := *m.ChosenEpoch; e == 3 {
			cp, err := em.LoadCheckpoint(filepath.Join(out, "layer-1"))
			if err != nil {
				t.Fatal(err)
			}
			want = cp.Theta.Data().([]float32)
		} else {
			cp, err := em.LoadCheckpoint(filepath.Join(out, "layer-1", fmt.Sprintf("epoch-%d", e)))
			if err != nil {
				t.Fatal(err)
			}
			want = cp.Theta.Data().([]float32)
		}
		if !slices.Equal(kept.Data().([]float32), want) {
			t.Errorf("theta-1.npy is not the θ of epoch %d", *m.ChosenEpoch)
		}
	}
	if len(m.Layers) == 1 && len(m.Layers[0].LogLik) == 3 && len(m.Epochs) == 4 {
		// The curve's LL after e epochs: epoch e+1's, under the kernels
		// before its update, and after the last, the trained kernels'.
		lay := m.Layers[0]
		if lay.FinalLogLik == nil {
			t.Errorf("no LL of the trained kernels after %v", lay.LogLik)
		} else if *lay.FinalLogLik < lay.LogLik[2] {
			t.Errorf("LL of the trained kernels %v after %v: below the last epoch's", *lay.FinalLogLik, lay.LogLik)
		} else if want := append(slices.Clone(lay.LogLik), *lay.FinalLogLik); m.Epochs[0].LogLik != want[0] || m.Epochs[3].LogLik != want[3] {
			t.Errorf("epoch curve %+v: want the LLs %v", m.Epochs, want)
		}
	}
	if len(m.Layers) != 1 || len(m.Layers[0].LogLik) != 3 || m.Images != 200 || m.PeakRSSBytes <= 0 || m.Layers[0].DistinctKernels < 1 || m.TrainSeconds <= 0 || m.ClassifierSeconds <= 0 || m.FeaturesSeconds <= 0 {
		t.Errorf("metrics %+v", m)
	}
	if len(m.Labels) != 3 || m.Labels[0].Labels != 20 || m.Labels[2].Labels != 200 || len(m.Labels[0].Fits) != 3 {
		t.Errorf("label study %+v: want 20, 60 and 200 labels, three feature sets each", m.Labels)
	}
	if got, _ := m.Labels[2].Fit("lse2"); got.TestAccuracy != m.Evaluations[0].TestAccuracy {
		t.Errorf("label study on all labels %v, main fit %v: want the same fit", got.TestAccuracy, m.Evaluations[0].TestAccuracy)
	}
	cp, err := em.LoadCheckpoint(filepath.Join(out, "layer-1"))
	if err != nil || cp.Epoch != 3 {
		t.Errorf("checkpoint: %+v, %v; want epoch 3", cp, err)
	}
	if old, _ := filepath.Glob(filepath.Join(out, "layer-1", "checkpoint-[12].npy")); len(old) != 0 {
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
		Layers: one(em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 2})})
	var ie *experiment.InterruptedError
	if !errors.As(err, &ie) || ie.Epoch != 0 {
		t.Fatalf("error %v, want an *InterruptedError at epoch 0", err)
	}
	if _, err := os.Stat(filepath.Join(out, "metrics.json")); !os.IsNotExist(err) {
		t.Error("a cancelled run wrote metrics.json")
	}
}

// cancelOn is a log that cancels when a line starting with prefix is
// written, and counts the lines written after that.
type cancelOn struct {
	prefix string
	cancel context.CancelFunc
	after  int
	seen   bool
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if c.seen && strings.TrimSpace(string(p)) != "" {
		c.after++
	}
	if !c.seen && strings.HasPrefix(string(p), c.prefix) {
		c.seen = true
		c.cancel()
	}
	return len(p), nil
}

// TestCancelledAfterTraining cancels once training is done, in the
// features and in the search for C: the run stops at once with an
// *InterruptedError that says the layers are trained, and writes no
// metrics.
func TestCancelledAfterTraining(t *testing.T) {
	for _, prefix := range []string{"layer 1:", "  softmax, C = 1:"} {
		t.Run(prefix, func(t *testing.T) {
			out := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &cancelOn{prefix: prefix, cancel: cancel}
			_, err := experiment.Run(data(t), experiment.Options{Out: out, Context: ctx, Log: log, Eval: true, ChooseC: true, Validation: 50,
				Pools:  []graph.Pooling{{Reduce: graph.MeanCells, Grid: 2}, {Reduce: graph.MaxCells, Grid: 2}},
				Layers: one(em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 1})})
			var ie *experiment.InterruptedError
			if !errors.As(err, &ie) || !ie.Trained || !strings.Contains(err.Error(), "trained layers") {
				t.Fatalf("error %v, want an *InterruptedError after training", err)
			}
			if !log.seen {
				t.Fatalf("the run never logged %q", prefix)
			}
			if log.after > 0 {
				t.Errorf("the run logged %d lines after the cancellation", log.after)
			}
			if _, err := os.Stat(filepath.Join(out, "metrics.json")); !os.IsNotExist(err) {
				t.Error("a cancelled run wrote metrics.json")
			}
			if _, err := os.Stat(filepath.Join(out, em.ModelFile)); err != nil {
				t.Errorf("the trained layers were not saved: %v", err)
			}
		})
	}
}

// TestBusy starts a run in a directory another run holds: it must fail
// at once with ErrBusy, naming the other run, and write nothing.
func TestBusy(t *testing.T) {
	out := t.TempDir()
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	d := data(t) // t.Fatal belongs to the test's goroutine
	go func() {
		_, err := experiment.Run(d, experiment.Options{Out: out,
			Progress: func(int, int) em.Recorder { return blockAfterFirstBatch{started, release} },
			Layers:   one(em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 1})})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the first run ended before its first batch: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the first run never reached its first batch")
	}
	_, err := experiment.Run(data(t), experiment.Options{Out: out, Layers: one(em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 1})})
	if !errors.Is(err, rundir.ErrBusy) || !strings.Contains(err.Error(), "process") {
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
		{"kernel wider than the image", experiment.Options{Layers: one(em.Settings{Kernels: 2, Width: 13})}},
		{"negative tolerance", experiment.Options{Layers: one(em.Settings{Tol: -1})}},
		{"grid wider than the positions", experiment.Options{Eval: true, Layers: one(em.Settings{Kernels: 2, Width: 10}), Pools: []graph.Pooling{{Grid: 4}}}},
		{"validation split leaving nothing to fit on", experiment.Options{Eval: true, Validation: 199, Layers: one(em.Settings{Kernels: 2, Width: 5})}},
		{"C by validation without a validation split", experiment.Options{Eval: true, ChooseC: true, Layers: one(em.Settings{Kernels: 2, Width: 5})}},
		{"epoch picked without the epoch curve", experiment.Options{Eval: true, Validation: 50, PickEpoch: true, Layers: one(em.Settings{Kernels: 2, Width: 5})}},
		{"epoch curve without a validation split", experiment.Options{Eval: true, EpochCurve: true, Layers: one(em.Settings{Kernels: 2, Width: 5})}},
		{"second layer wider than its input", experiment.Options{Layers: []em.StackLayer{
			{Settings: em.Settings{Kernels: 3, Width: 5}, Transform: graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MeanCells}},
			{Settings: em.Settings{Kernels: 2, Width: 5}}}}},
		{"per-layer poolings, one for two layers", experiment.Options{Eval: true, Layers: twoLayers(), LayerPools: [][]graph.Pooling{{{Grid: 2}}}}},
		{"per-layer poolings, a grid wider than layer 2's positions", experiment.Options{Eval: true, Layers: twoLayers(), LayerPools: [][]graph.Pooling{{{Grid: 2}, {Grid: 3}}}}},
		{"no layers", experiment.Options{}},
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

func one(s em.Settings) []em.StackLayer { return []em.StackLayer{{Settings: s}} }

// twoLayers is a small stack: 6 kernels of 5×5 on the 12×12 bars, their
// posterior mean-pooled 2×2 (4×4 maps of 6 channels), then 4 kernels of 3×3.
func twoLayers() []em.StackLayer {
	return []em.StackLayer{
		{Settings: em.Settings{Kernels: 6, Width: 5, Pad: 0, Batch: 64, MaxEpochs: 2, InitFrom: em.InitKMeansPP, InitSample: 300},
			Transform: graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MeanCells}},
		{Settings: em.Settings{Kernels: 4, Width: 3, Pad: 0, Batch: 64, MaxEpochs: 3, InitFrom: em.InitKMeansPP, InitSample: 300}},
	}
}

// TestRunStack runs two layers end to end: the model, both layers'
// figures, the metrics of each, the features of the top layer, of both,
// and of both each pooled its own way.
func TestRunStack(t *testing.T) {
	out := t.TempDir()
	d := data(t)
	pool := graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 2}
	root := graph.Pooling{Reduce: graph.MeanCells, Grid: 2, Posterior: true, Root: true}
	m, err := experiment.Run(d, experiment.Options{Out: out, Eval: true, Layers: twoLayers(), ChooseC: true, Validation: 50,
		Pools: []graph.Pooling{pool}, LayerPools: [][]graph.Pooling{{root, pool}}, Features: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kernels-1.png", "kernels-2.png", "loglik.png", "theta-1.npy", "theta-2.npy", em.ModelFile} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	st, err := em.LoadStack(out)
	if err != nil || len(st.Layers) != 2 || st.Layers[0].Scale == nil || st.Layers[1].Config.Channels != 6 {
		t.Fatalf("model: %+v, %v; want two layers, the second on 6 channels", st, err)
	}
	if len(m.Layers) != 2 || len(m.Layers[1].LogLik) != 3 || m.Layers[1].Input != [3]int{6, 4, 4} {
		t.Errorf("layers %+v", m.Layers)
	}
	if len(m.Evaluations) != 3 || m.Evaluations[0].Pooling != "lse2" || m.Evaluations[0].Features != 16 ||
		m.Evaluations[1].Pooling != "lse2-all" || m.Evaluations[1].Features != 6*4+16 ||
		m.Evaluations[2].Pooling != "post-root-mean2+lse2" || m.Evaluations[2].Features != 6*4+16 {
		t.Errorf("evaluations %+v: want lse2 of layer 2 (16 features), then of both layers (40), then layer 1's post-root-mean2 beside layer 2's lse2 (40)", m.Evaluations)
	}
	// Each layer pooled its own way: layer 1's features under one pooling
	// beside layer 2's under the other, each computed alone.
	l1, err := em.StackFeatures(d.Test, st, estep.Pooled(root, 0), nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := em.StackFeatures(d.Test, st, estep.Pooled(pool, 1), nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	var want []float32
	for i := range len(d.TestLabels) {
		want = append(want, l1[i*24:(i+1)*24]...)
		want = append(want, l2[i*16:(i+1)*16]...)
	}
	if got := readNpy(t, filepath.Join(out, "features-post-root-mean2+lse2-test.npy")); !slices.Equal(got, want) {
		t.Errorf("features-post-root-mean2+lse2-test.npy: %d values differ from layer 1's and layer 2's computed alone (%d)", len(got), len(want))
	}
	sets, err := experiment.FeatureSets(nil, [][]graph.Pooling{{root, pool}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := experiment.Features(out, d.Test, sets[0], nil); err != nil || !slices.Equal(got, want) {
		t.Errorf("Features %s of the trained model: %v; want the run's features", sets[0].Name, err)
	}
	if _, _, err := experiment.Features(out, d.Test, experiment.FeatureSet{Name: "lse2 of layer 3", Layers: estep.Pooled(pool, 2)}, nil); err == nil {
		t.Error("Features of layer 3 of a two-layer model: no error")
	}
	// The top layer's features are cut from those of both layers: they
	// must be the top layer's alone, computed directly.
	for _, layers := range [][]int{{1}, {0, 1}} {
		want, err := em.StackFeatures(d.Test, st, estep.Pooled(pool, layers...), nil, 7)
		if err != nil {
			t.Fatal(err)
		}
		name := "features-lse2-test.npy"
		if len(layers) == 2 {
			name = "features-lse2-all-test.npy"
		}
		got := readNpy(t, filepath.Join(out, name))
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d values differ from the features of layers %v computed alone (%d)", name, len(got), layers, len(want))
		}
	}
	for _, ev := range m.Evaluations {
		i := slices.Index(ev.CGrid, ev.C)
		if ev.ValidationAccuracy == nil || len(ev.ValidationByC) < len(classify.DefaultCGrid) || len(ev.ValidationByC) != len(ev.CGrid) ||
			!slices.Equal(ev.CGrid[:len(classify.DefaultCGrid)], classify.DefaultCGrid) ||
			i < 0 || ev.ValidationByC[i] != slices.Max(ev.ValidationByC) || *ev.ValidationAccuracy != slices.Max(ev.ValidationByC) {
			t.Errorf("%s: C = %v, validation %v of %v: want the C of the grid that validates best", ev.Pooling, ev.C, ev.ValidationByC, ev.CGrid)
		}
	}
}

// TestRunLayerPoolsOnly runs a stack whose only feature set pools each
// layer its own way: no other set is evaluated, and the epoch curve pools
// the top layer as that set does.
func TestRunLayerPoolsOnly(t *testing.T) {
	out := t.TempDir()
	root := graph.Pooling{Reduce: graph.MeanCells, Grid: 2, Posterior: true, Root: true}
	lse := graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 2}
	m, err := experiment.Run(data(t), experiment.Options{Out: out, Eval: true, Layers: twoLayers(), Validation: 50, EpochCurve: true,
		LayerPools: [][]graph.Pooling{{root, lse}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Evaluations) != 1 || m.Evaluations[0].Pooling != "post-root-mean2+lse2" || m.Evaluations[0].Features != 6*4+16 || m.Pooling != "post-root-mean2+lse2" {
		t.Errorf("evaluations %+v, main %s: want post-root-mean2+lse2 alone (40 features)", m.Evaluations, m.Pooling)
	}
	if len(m.Epochs) != 4 { // the seeding and 3 epochs of layer 2
		t.Fatalf("epoch curve %+v: want 4 points", m.Epochs)
	}
	// The curve's last point is the trained model's top layer, pooled by
	// lse2: the classifier fitted on its features before the split.
	st, err := em.LoadStack(out)
	if err != nil {
		t.Fatal(err)
	}
	d := data(t)
	x, err := em.StackFeatures(d.Labelled, st, estep.Pooled(lse, 1), nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	fit, dim := len(d.Labels)-50, len(x)/len(d.Labels)
	model, _, err := classify.Train(x[:fit*dim], d.Labels[:fit], dim, d.Classes, classify.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := classify.Score(model.Predict(x[fit*dim:]), d.Labels[fit:], d.Classes)
	if got := m.Epochs[3].ValidationAccuracy; got != want {
		t.Errorf("epoch curve after epoch 3: validation %v, want %v (the top layer's lse2)", got, want)
	}
}

// TestRunStackPatchModel runs two layers under the patch model on
// whitened images, evaluating the pooled posteriors: every figure (the
// second layer's receptive fields go through the stack graph), both
// layers' model and the whitening in model.json, and LLs that never
// decrease.
func TestRunStackPatchModel(t *testing.T) {
	out := t.TempDir()
	layers := twoLayers()
	for l := range layers {
		layers[l].Settings.Model = graph.PatchModel
	}
	m, err := experiment.Run(data(t), experiment.Options{Out: out, Eval: true, Layers: layers, Validation: 50, Whiten: 3,
		Pools: []graph.Pooling{{Reduce: graph.MeanCells, Grid: 2, Posterior: true}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kernels-1.png", "kernels-2.png", "loglik.png", "whitening.npy"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	st, err := em.LoadStack(out)
	if err != nil || len(st.Layers) != 2 || st.Whitening == nil || st.Whitening.Width != 3 {
		t.Fatalf("model: %+v, %v; want two layers and a 3×3 whitening", st, err)
	}
	for l, layer := range st.Layers {
		if layer.Config.Model != graph.PatchModel {
			t.Errorf("layer %d: model %v, want patch", l+1, layer.Config.Model)
		}
		if layer.FinalLogLik == nil {
			t.Fatalf("layer %d: model.json has no LL of the trained kernels", l+1)
		}
		ll := append(slices.Clone(layer.LogLik), *layer.FinalLogLik)
		for e := 1; e < len(ll); e++ {
			if ll[e] < ll[e-1]-1e-6*math.Abs(ll[e-1]) {
				t.Errorf("layer %d: LL %v (the last: the trained kernels') decreases", l+1, ll)
			}
		}
	}
	if len(m.Evaluations) != 2 || m.Evaluations[0].Pooling != "post-mean2" || m.Evaluations[1].Pooling != "post-mean2-all" {
		t.Errorf("evaluations %+v: want post-mean2 of layer 2, then of both layers", m.Evaluations)
	}
}

// cancelAt cancels the run at the given layer (0-based) and epoch.
type cancelAt struct {
	layer, epoch, at int
	cancel           context.CancelFunc
}

func (c cancelAt) Record(e em.Event) error {
	if c.layer == c.at && e.Epoch == c.epoch && e.Batch == 0 {
		c.cancel()
	}
	return nil
}

// TestResumeStack interrupts a two-layer run after layer 2's first epoch
// and resumes it: both layers' θ must equal, bit for bit, those of the run
// done without interruption.
func TestResumeStack(t *testing.T) {
	whole := t.TempDir()
	if _, err := experiment.Run(data(t), experiment.Options{Out: whole, Layers: twoLayers()}); err != nil {
		t.Fatal(err)
	}
	cut := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := experiment.Run(data(t), experiment.Options{Out: cut, Layers: twoLayers(), Context: ctx,
		Progress: func(l, _ int) em.Recorder { return cancelAt{layer: 1, epoch: 1, at: l, cancel: cancel} }})
	var ie *experiment.InterruptedError
	if !errors.As(err, &ie) || ie.Layer != 2 || ie.Epoch != 1 {
		t.Fatalf("interrupted run: %v, want an interruption in layer 2 after epoch 1", err)
	}
	if _, err := experiment.Run(data(t), experiment.Options{Out: cut, Layers: twoLayers(), Resume: true}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	for _, name := range []string{"theta-1.npy", "theta-2.npy"} {
		a, _ := os.ReadFile(filepath.Join(whole, name))
		b, _ := os.ReadFile(filepath.Join(cut, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s of the resumed run differs from the uninterrupted run's", name)
		}
	}
}

// TestRerun runs a two-layer experiment, then a one-layer one into the same
// directory: nothing of the first may remain that the second did not
// write, and a resume of the second must see one layer.
func TestRerun(t *testing.T) {
	out := t.TempDir()
	if _, err := experiment.Run(data(t), experiment.Options{Out: out, Layers: twoLayers()}); err != nil {
		t.Fatal(err)
	}
	if _, err := experiment.Run(data(t), experiment.Options{Out: out, Layers: one(em.Settings{Kernels: 3, Width: 5, Batch: 64, MaxEpochs: 1})}); err != nil {
		t.Fatal(err)
	}
	for _, stale := range []string{"theta-2.npy", "kernels-2.png", "layer-2"} {
		if _, err := os.Stat(filepath.Join(out, stale)); !os.IsNotExist(err) {
			t.Errorf("%s of the first run is still there", stale)
		}
	}
	if st, err := em.LoadStack(out); err != nil || len(st.Layers) != 1 || st.Layers[0].Config.Kernels != 3 {
		t.Errorf("model after the second run: %+v, %v", st, err)
	}
}

// TestNoTestLeak runs the same experiment twice, the second time with the
// test labels permuted: the kernels, every validation accuracy, every C
// (of the feature sets, the epoch curve and the label study) and the main
// feature set must come out the same; only the test accuracies may move.
func TestNoTestLeak(t *testing.T) {
	run := func(d experiment.Data) (*experiment.Metrics, []byte) {
		out := t.TempDir()
		opt := experiment.Options{Out: out, Eval: true, Pixels: true, Validation: 50, ChooseC: true, EpochCurve: true, LabelCounts: []int{20, 60},
			Pools:  []graph.Pooling{{Reduce: graph.LogSumExpCells, Grid: 2}, graph.ImageWide},
			Layers: []em.StackLayer{{Settings: em.Settings{Kernels: 4, Width: 7, Batch: 64, MaxEpochs: 2, InitFrom: em.InitKMeansPP, InitSample: 400}}}}
		m, err := experiment.Run(d, opt)
		if err != nil {
			t.Fatal(err)
		}
		theta, err := os.ReadFile(filepath.Join(out, "theta-1.npy"))
		if err != nil {
			t.Fatal(err)
		}
		return m, theta
	}
	d := data(t)
	m1, theta1 := run(d)
	d.TestLabels = slices.Clone(d.TestLabels)
	rand.New(rand.NewPCG(8, 8)).Shuffle(len(d.TestLabels), func(i, j int) { d.TestLabels[i], d.TestLabels[j] = d.TestLabels[j], d.TestLabels[i] })
	m2, theta2 := run(d)
	if !bytes.Equal(theta1, theta2) {
		t.Error("the kernels depend on the test labels")
	}
	if m1.Pooling != m2.Pooling || *m1.ValidationAccuracy != *m2.ValidationAccuracy || *m1.PixelValidationAccuracy != *m2.PixelValidationAccuracy {
		t.Errorf("main feature set %s (validation %v), with the test labels permuted %s (%v)", m1.Pooling, *m1.ValidationAccuracy, m2.Pooling, *m2.ValidationAccuracy)
	}
	moved := false
	for i, e1 := range m1.Evaluations {
		e2 := m2.Evaluations[i]
		if e1.C != e2.C || *e1.ValidationAccuracy != *e2.ValidationAccuracy || !slices.Equal(e1.ValidationByC, e2.ValidationByC) || e1.TrainAccuracy != e2.TrainAccuracy {
			t.Errorf("%s: C %v, validation %v, train %v; with the test labels permuted C %v, validation %v, train %v",
				e1.Pooling, e1.C, e1.ValidationByC, e1.TrainAccuracy, e2.C, e2.ValidationByC, e2.TrainAccuracy)
		}
		moved = moved || e1.TestAccuracy != e2.TestAccuracy
	}
	if !moved {
		t.Error("permuting the test labels moved no test accuracy: the test did not test")
	}
	if !slices.Equal(m1.Epochs, m2.Epochs) {
		t.Errorf("epoch curve %+v, with the test labels permuted %+v", m1.Epochs, m2.Epochs)
	}
	for i, p := range m1.Labels {
		for _, f := range p.Fits {
			if f2, _ := m2.Labels[i].Fit(f.Pooling); f2.C != f.C {
				t.Errorf("label study, %d labels, %s: C %v, with the test labels permuted %v", p.Labels, f.Pooling, f.C, f2.C)
			}
		}
	}
}

// readNpy reads a float32 .npy file.
func readNpy(t *testing.T, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v []float32
	if err := npyio.Read(f, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// notSnakeCase returns the paths of the keys of v (JSON decoded), at any
// depth, that are not lower case words joined by underscores.
func notSnakeCase(v any, path string) []string {
	var bad []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`).MatchString(k) {
				bad = append(bad, path+"/"+k)
			}
			bad = append(bad, notSnakeCase(x, path+"/"+k)...)
		}
	case []any:
		for i, x := range v {
			bad = append(bad, notSnakeCase(x, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return bad
}

// TestFeatureSets checks the sets a run evaluates, their names and the
// layers each holds, for one layer and for a stack, and that a per-layer
// set whose count does not match the layers is refused.
func TestFeatureSets(t *testing.T) {
	lse := graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 2}
	root := graph.Pooling{Reduce: graph.MeanCells, Grid: 3, Posterior: true, Root: true}
	type layer struct {
		layer int
		pool  string
	}
	for _, tc := range []struct {
		pools      []graph.Pooling
		layerPools [][]graph.Pooling
		layers     int
		want       map[string][]layer // each set's layers, by its name
		order      []string           // the sets' names, in order
		err        bool
	}{
		{pools: []graph.Pooling{lse, root}, layers: 1,
			order: []string{"lse2", "post-root-mean3"},
			want:  map[string][]layer{"lse2": {{0, "lse2"}}, "post-root-mean3": {{0, "post-root-mean3"}}}},
		{pools: []graph.Pooling{lse}, layerPools: [][]graph.Pooling{{root, lse}}, layers: 2,
			order: []string{"lse2", "lse2-all", "post-root-mean3+lse2"},
			want: map[string][]layer{"lse2": {{1, "lse2"}}, "lse2-all": {{0, "lse2"}, {1, "lse2"}},
				"post-root-mean3+lse2": {{0, "post-root-mean3"}, {1, "lse2"}}}},
		{layerPools: [][]graph.Pooling{{root, lse, lse}}, layers: 3,
			order: []string{"post-root-mean3+lse2+lse2"},
			want:  map[string][]layer{"post-root-mean3+lse2+lse2": {{0, "post-root-mean3"}, {1, "lse2"}, {2, "lse2"}}}},
		{layerPools: [][]graph.Pooling{{root, lse}}, layers: 3, err: true},
		{layerPools: [][]graph.Pooling{{root, lse}}, layers: 1, err: true},
	} {
		sets, err := experiment.FeatureSets(tc.pools, tc.layerPools, tc.layers)
		if tc.err {
			if err == nil {
				t.Errorf("%d layers, %v: no error for a per-layer set of another count", tc.layers, tc.layerPools)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range sets {
			names = append(names, s.Name)
			var got []layer
			for _, f := range s.Layers {
				got = append(got, layer{f.Layer, f.Pooling.Name()})
			}
			if !slices.Equal(got, tc.want[s.Name]) {
				t.Errorf("%d layers: set %s holds %v, want %v", tc.layers, s.Name, got, tc.want[s.Name])
			}
		}
		if !slices.Equal(names, tc.order) {
			t.Errorf("%d layers: sets %v, want %v", tc.layers, names, tc.order)
		}
	}
}

// TestClassifierChoice lets validation choose between the softmax and the
// L2-SVM: each feature set records both losses' best validation accuracy
// and takes the loss (and C) of the higher, the softmax on a tie.
func TestClassifierChoice(t *testing.T) {
	out := t.TempDir()
	m, err := experiment.Run(data(t), experiment.Options{Out: out, Eval: true, ChooseC: true, Validation: 50,
		Classifiers: []classify.Loss{classify.Softmax, classify.SquaredHinge},
		Pools:       []graph.Pooling{{Reduce: graph.MeanCells, Grid: 2}, {Reduce: graph.MaxCells, Grid: 2}},
		Layers:      one(em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 1})})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range m.Evaluations {
		if len(ev.ValidationByLoss) != 2 || ev.ValidationAccuracy == nil {
			t.Fatalf("%s: validation by loss %v", ev.Pooling, ev.ValidationByLoss)
		}
		want := classify.Softmax
		if ev.ValidationByLoss[1] > ev.ValidationByLoss[0] {
			want = classify.SquaredHinge
		}
		if ev.Loss != want || *ev.ValidationAccuracy != slices.Max(ev.ValidationByLoss) {
			t.Errorf("%s: chose %v (validation %v) from %v, want %v", ev.Pooling, ev.Loss, *ev.ValidationAccuracy, ev.ValidationByLoss, want)
		}
	}
}

// TestCurveFeaturesReused: the evaluation takes the epoch curve's features
// of the kept epoch instead of computing them again; they must be, bit for
// bit, the features of the saved model, and their validation the same as
// a run without the curve on the same kernels.
func TestCurveFeaturesReused(t *testing.T) {
	for _, pick := range []bool{true, false} {
		out := t.TempDir()
		pool := graph.Pooling{Reduce: graph.MeanCells, Grid: 2, Posterior: true, Root: true}
		d := data(t)
		m, err := experiment.Run(d, experiment.Options{Out: out, Eval: true, ChooseC: true, Validation: 50, EpochCurve: true, PickEpoch: pick,
			Features: true, Pools: []graph.Pooling{pool},
			Layers: one(em.Settings{Kernels: 3, Width: 5, Batch: 64, MaxEpochs: 2, Model: graph.PatchModel, InitFrom: em.InitKMeansPP})})
		if err != nil {
			t.Fatal(err)
		}
		sets, err := experiment.FeatureSets([]graph.Pooling{pool}, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := experiment.Features(out, d.Labelled, sets[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := readNpy(t, filepath.Join(out, "features-"+pool.Name()+"-train.npy")); !slices.Equal(got, want) {
			t.Errorf("pick %v: the evaluation's training features differ from the saved model's", pick)
		}
		// The epoch the run kept validates as its evaluation says.
		kept := m.Epochs[len(m.Epochs)-1]
		if pick {
			kept = m.Epochs[*m.ChosenEpoch]
		}
		if ev := m.Evaluations[0]; *ev.ValidationAccuracy != kept.ValidationAccuracy || ev.C != kept.C {
			t.Errorf("pick %v: evaluation validates at %v (C = %v), the curve's kept epoch at %v (C = %v)", pick, *ev.ValidationAccuracy, ev.C, kept.ValidationAccuracy, kept.C)
		}
	}
}

// TestWorking: every pass over images that computes features (the epoch
// curve's and the evaluation's) tells Options.Working how far it is, from
// its first batch to its end, counting every image.
func TestWorking(t *testing.T) {
	type pass struct{ done, total, calls int }
	passes := map[string]*pass{}
	var order []string
	_, err := experiment.Run(data(t), experiment.Options{Out: t.TempDir(), Eval: true, Validation: 50, EpochCurve: true,
		Pools:  []graph.Pooling{{Reduce: graph.MeanCells, Grid: 2}},
		Layers: one(em.Settings{Kernels: 2, Width: 5, Batch: 64, MaxEpochs: 1}),
		Working: func(what string, done, total int, _ time.Duration) {
			p, ok := passes[what]
			if !ok {
				p = &pass{}
				passes[what] = p
				order = append(order, what)
			}
			if done < p.done {
				t.Errorf("%s: %d images done after %d", what, done, p.done)
			}
			p.done, p.total = done, total
			p.calls++
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"epoch curve: features (mean2) after epoch 0", "epoch curve: features (mean2) after epoch 1",
		"features (mean2) of the test images"} // the training features come from the curve
	if !slices.Equal(order, want) {
		t.Errorf("passes %q, want %q", order, want)
	}
	for what, p := range passes {
		if p.done != p.total || p.calls < 2 {
			t.Errorf("%s: ended at %d of %d after %d reports", what, p.done, p.total, p.calls)
		}
	}
}

// TestFeaturesWhitenedPatches: Features of a model trained on whitened
// patches takes the raw images (the model whitens them) and gives, bit for
// bit, the features the run wrote; images of another shape are refused.
func TestFeaturesWhitenedPatches(t *testing.T) {
	out := t.TempDir()
	pool := graph.Pooling{Reduce: graph.MeanCells, Grid: 2, Posterior: true, Root: true}
	d := data(t)
	if _, err := experiment.Run(d, experiment.Options{Out: out, Eval: true, Features: true, WhitenPatches: 3, Pools: []graph.Pooling{pool},
		Layers: one(em.Settings{Kernels: 4, Width: 1, Batch: 64, MaxEpochs: 1, Model: graph.PatchModel, InitFrom: em.InitKMeansPP})}); err != nil {
		t.Fatal(err)
	}
	sets, err := experiment.FeatureSets([]graph.Pooling{pool}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, dim, err := experiment.Features(out, d.Test, sets[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := readNpy(t, filepath.Join(out, "features-"+pool.Name()+"-test.npy")); dim != 16 || !slices.Equal(got, want) {
		t.Errorf("Features of the whitened-patch model: %d per image, %d values; want the run's %d, 16 per image", dim, len(got), len(want))
	}
	small, err := dataset.NewImages(make([]float32, 2*11*11), 2, 1, 11, 11)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := experiment.Features(out, small, sets[0], nil); err == nil {
		t.Error("Features of 11×11 images under a model of 12×12: no error")
	}
}

// TestMirror: with Mirror the classifier of a feature set is fitted on the
// labelled images' features and on their mirrors' (mirrored before the
// whitening of patches), validated on the validation images alone; the
// run's C, validation and test accuracy must be those of fits made here
// from features of dataset.Mirror's images. The evaluation takes the
// epoch curve's features of the images, which it validated without
// mirrors, and writes the images' features alone.
func TestMirror(t *testing.T) {
	out := t.TempDir()
	pool := graph.Pooling{Reduce: graph.MeanCells, Grid: 2, Posterior: true, Root: true}
	d := data(t)
	const validation = 50
	grid := []float64{1, 0.1, 0.01}
	m, err := experiment.Run(d, experiment.Options{Out: out, Eval: true, WhitenPatches: 3, Pools: []graph.Pooling{pool}, Mirror: true,
		Validation: validation, ChooseC: true, CGrid: grid, EpochCurve: true, PickEpoch: true, Features: true,
		Layers: one(em.Settings{Kernels: 4, Width: 1, Batch: 64, MaxEpochs: 2, Model: graph.PatchModel, InitFrom: em.InitKMeansPP})})
	if err != nil {
		t.Fatal(err)
	}
	sets, err := experiment.FeatureSets([]graph.Pooling{pool}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	x, dim, err := experiment.Features(out, d.Labelled, sets[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	xm, _, err := experiment.Features(out, dataset.Mirror(d.Labelled), sets[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(x, xm) {
		t.Fatal("the mirrors' features equal the images': the test cannot tell them apart")
	}
	if got := readNpy(t, filepath.Join(out, "features-"+pool.Name()+"-train.npy")); !slices.Equal(got, x) {
		t.Errorf("features-%s-train.npy: %d values; want the labelled images' %d", pool.Name(), len(got), len(x))
	}
	test, _, err := experiment.Features(out, d.Test, sets[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	n := len(d.Labels)
	fitN := n - validation
	xf := slices.Concat(x[:fitN*dim], xm[:fitN*dim])
	yf := slices.Concat(d.Labels[:fitN], d.Labels[:fitN])
	ch, err := classify.ChooseC(xf, yf, x[fitN*dim:], d.Labels[fitN:], dim, d.Classes, grid, classify.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ev := m.Evaluations[0]
	if ev.C != ch.C || *ev.ValidationAccuracy != ch.Best() {
		t.Errorf("run: C = %v, validation %v; fits on the images and their mirrors: C = %v, validation %v", ev.C, *ev.ValidationAccuracy, ch.C, ch.Best())
	}
	model, _, err := classify.Train(slices.Concat(x, xm), slices.Concat(d.Labels, d.Labels), dim, d.Classes, classify.Settings{C: ch.C, Start: ch.Model})
	if err != nil {
		t.Fatal(err)
	}
	if acc, _ := classify.Score(model.Predict(test), d.TestLabels, d.Classes); ev.TestAccuracy != acc {
		t.Errorf("run: test %v; the refit on every image and its mirror: %v", ev.TestAccuracy, acc)
	}
}
