package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"calm/classify"
	"calm/em"
	"calm/graph"
	"calm/internal/atomicfile"
	"calm/viz"
)

// Data is what an experiment runs on.
type Data struct {
	Name        string
	Train       em.Source // the images the kernels are learned from
	Labelled    em.Source // the images the classifier is fitted on (often Train)
	Labels      []byte    // labels of Labelled
	Test        em.Source
	TestLabels  []byte
	Classes     int
	Description map[string]any // recorded in config.json (paths, versions)
}

// Options configure Run.
type Options struct {
	Out      string      // output directory, created if missing
	Settings em.Settings // the EM settings; Ops must be set
	Eval     bool        // extract features and fit the classifiers
	Pixels   bool        // also fit the classifier on raw pixels
	Log      io.Writer   // progress and results; nil for none
	Config   map[string]any

	// Context, when cancelled, stops training at the next batch and
	// evaluation between its phases, with an *InterruptedError.
	Context context.Context
	// Resume continues the interrupted run whose checkpoint is in Out;
	// config.json is left as the first run wrote it.
	Resume bool
}

// Metrics is what metrics.json holds.
type Metrics struct {
	Dataset           string        `json:"dataset"`
	LogLik            []float64     `json:"loglik"`
	EpochSeconds      []float64     `json:"epoch_seconds"`
	Epochs            int           `json:"epochs"`
	Status            string        `json:"status"`
	Images            int           `json:"images"`
	Kernels           int           `json:"kernels"`
	Width             int           `json:"width"`
	Padding           int           `json:"padding"`
	Batch             int           `json:"batch"`
	Seed              uint64        `json:"seed"`
	Ops               string        `json:"ops"`
	TrainAccuracy     *float64      `json:"train_accuracy,omitempty"`
	TestAccuracy      *float64      `json:"test_accuracy,omitempty"`
	Confusion         [][]int       `json:"confusion,omitempty"`
	Classifier        *classify.Fit `json:"classifier,omitempty"`
	PixelTrainAcc     *float64      `json:"pixel_train_accuracy,omitempty"`
	PixelTestAccuracy *float64      `json:"pixel_test_accuracy,omitempty"`
	PixelClassifier   *classify.Fit `json:"pixel_classifier,omitempty"`
	TrainSeconds      float64       `json:"train_seconds"`
	EvalSeconds       float64       `json:"eval_seconds,omitempty"`
	WallSeconds       float64       `json:"wall_seconds"`
	PeakRSSBytes      int64         `json:"peak_rss_bytes"`
	GoVersion         string        `json:"go_version"`
	GOMAXPROCS        int           `json:"gomaxprocs"`
}

// Run trains, evaluates and writes every output into opt.Out:
// kernels.png, loglik.png, posterior.png, theta.npy, config.json and
// metrics.json, each written whole or not at all.
func Run(d Data, opt Options) (*Metrics, error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format, args...)
		}
	}
	s := opt.Settings
	if s.Ops == nil {
		s.Ops = graph.Fast{}
	}
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	n, c, h, w := d.Train.Shape()
	cfg := s.Config(c, h, w)
	cfg.Batch = min(cfg.Batch, n)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	conf := map[string]any{
		"dataset": d.Name, "images": n, "kernels": cfg.Kernels, "width": cfg.Size, "padding": cfg.Pad,
		"batch": cfg.Batch, "max_epochs": s.MaxEpochs, "tol": s.Tol, "seed": s.Seed, "ops": s.Ops.Name(),
		"go_version": runtime.Version(),
	}
	for k, v := range d.Description {
		conf[k] = v
	}
	for k, v := range opt.Config {
		conf[k] = v
	}
	ctx := opt.Context
	if ctx == nil {
		ctx = context.Background()
	}
	s.Context = ctx
	if opt.Resume {
		cp, err := LoadCheckpoint(opt.Out)
		if err != nil {
			return nil, err
		}
		s.Resume = cp
		logf("resuming after epoch %d\n", cp.Epoch)
	} else if err := writeJSON(filepath.Join(opt.Out, "config.json"), conf); err != nil {
		return nil, err
	}
	ckpt := &checkpointer{dir: opt.Out}
	if s.Resume != nil {
		ckpt.epoch = s.Resume.Epoch
	}
	interrupted := func(err error) error {
		return &InterruptedError{Dir: opt.Out, Epoch: ckpt.epoch, Err: err}
	}
	logf("%s: %d images %d×%d×%d, %d kernels %d×%d, padding %d, batch %d, op set %s\n",
		d.Name, n, c, h, w, cfg.Kernels, cfg.Size, cfg.Size, cfg.Pad, cfg.Batch, s.Ops.Name())
	s.Recorder = ckpt
	if opt.Log != nil {
		s.Recorder = recorders{ckpt, newProgress(opt.Log, s.MaxEpochs, n)}
	}
	res, err := em.Train(d.Train, s)
	if errors.Is(err, context.Canceled) {
		return nil, interrupted(err)
	}
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	m := &Metrics{
		Dataset: d.Name, LogLik: res.LogLik, EpochSeconds: res.EpochSeconds, Epochs: len(res.LogLik),
		Status: res.Status.String(), Images: n, Kernels: cfg.Kernels, Width: cfg.Size, Padding: cfg.Pad,
		Batch: cfg.Batch, Seed: s.Seed, Ops: s.Ops.Name(), TrainSeconds: time.Since(start).Seconds(),
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	theta := res.Theta.Data().([]float32)
	if err := em.SaveTheta(filepath.Join(opt.Out, "theta.npy"), res.Theta); err != nil {
		return nil, err
	}
	if c == 1 || c == 3 {
		title := fmt.Sprintf("%s: first %d of %d kernels", d.Name, min(64, cfg.Kernels), cfg.Kernels)
		if err := viz.SaveKernels(filepath.Join(opt.Out, "kernels.png"), title, theta, cfg.Kernels, c, cfg.Size, 64, 8); err != nil {
			return nil, err
		}
	}
	if err := viz.SaveLogLik(filepath.Join(opt.Out, "loglik.png"), d.Name+": log-likelihood per epoch", res.LogLik); err != nil {
		return nil, err
	}
	if c == 1 && d.Test != nil {
		if err := savePosterior(filepath.Join(opt.Out, "posterior.png"), d.Test, res, s.Ops, 4); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, interrupted(ctx.Err())
	}
	if opt.Eval {
		evalStart := time.Now()
		if err := evaluate(d, opt, res, s.Ops, m, logf); err != nil {
			return nil, err
		}
		m.EvalSeconds = time.Since(evalStart).Seconds()
	}
	if ctx.Err() != nil {
		return nil, interrupted(ctx.Err())
	}
	m.WallSeconds = time.Since(start).Seconds()
	m.PeakRSSBytes = peakRSS()
	if err := writeJSON(filepath.Join(opt.Out, "metrics.json"), m); err != nil {
		return nil, err
	}
	logf("wrote %s in %.1f s (peak RSS %.0f MiB)\n", opt.Out, m.WallSeconds, float64(m.PeakRSSBytes)/(1<<20))
	return m, nil
}

func evaluate(d Data, opt Options, res *em.Result, ops graph.Ops, m *Metrics, logf func(string, ...any)) error {
	pad, batch := res.Config.Pad, res.Config.Batch
	k := res.Config.Kernels
	logf("features of %d + %d images…\n", len(d.Labels), len(d.TestLabels))
	ftrain, err := em.Features(d.Labelled, res.Theta, pad, batch, ops)
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	ftest, err := em.Features(d.Test, res.Theta, pad, batch, ops)
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	model, fit, err := classify.Train(ftrain, d.Labels, k, d.Classes, classify.Settings{})
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	trainAcc, _ := classify.Score(model.Predict(ftrain), d.Labels, d.Classes)
	testAcc, conf := classify.Score(model.Predict(ftest), d.TestLabels, d.Classes)
	m.TrainAccuracy, m.TestAccuracy, m.Confusion, m.Classifier = &trainAcc, &testAcc, conf, fit
	logf("softmax on %d features: train %.2f %%, test %.2f %% (%d iterations, %s)\n", k, 100*trainAcc, 100*testAcc, fit.Iterations, fit.Status)
	logf("confusion matrix (rows: true class, columns: predicted):\n")
	for i, row := range conf {
		logf("  %d:", i)
		for _, v := range row {
			logf(" %5d", v)
		}
		logf("\n")
	}
	if !opt.Pixels {
		return nil
	}
	px, err := pixels(d.Labelled)
	if err != nil {
		return err
	}
	tpx, err := pixels(d.Test)
	if err != nil {
		return err
	}
	_, c, h, w := d.Test.Shape()
	// The pixel baseline has 10× more parameters; scikit-learn's tolerance
	// (1e-4) keeps its cost in minutes.
	pm, pfit, err := classify.Train(px, d.Labels, c*h*w, d.Classes, classify.Settings{GradTol: 1e-4, MaxIter: 1000})
	if err != nil {
		return fmt.Errorf("experiment: pixels: %w", err)
	}
	ptrain, _ := classify.Score(pm.Predict(px), d.Labels, d.Classes)
	ptest, _ := classify.Score(pm.Predict(tpx), d.TestLabels, d.Classes)
	m.PixelTrainAcc, m.PixelTestAccuracy, m.PixelClassifier = &ptrain, &ptest, pfit
	logf("softmax on %d raw pixels: train %.2f %%, test %.2f %% (%d iterations, %s)\n", c*h*w, 100*ptrain, 100*ptest, pfit.Iterations, pfit.Status)
	return nil
}

// pixels returns every image of src, without a copy when src is in memory.
func pixels(src em.Source) ([]float32, error) {
	if im, ok := src.(*em.Images); ok {
		return im.Pixels(), nil
	}
	n, c, h, w := src.Shape()
	out := make([]float32, n*c*h*w)
	if err := src.Read(out, 0); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	return out, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	if err := atomicfile.WriteBytes(path, append(b, '\n')); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	return nil
}

// peakRSS returns the process's peak resident set size in bytes (Linux
// reports ru_maxrss in KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}
