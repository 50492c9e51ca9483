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
	"calm/estep"
	"calm/graph"
	"calm/internal/atomicfile"
	"calm/internal/sysmem"
	"calm/mstep"
	"calm/viz"

	"gorgonia.org/gorgonia/encoding/dot"
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
	Settings em.Settings // the EM settings

	// Pools are the poolings whose features are evaluated, the first the
	// main one (metrics.json's top-level accuracies); default the paper's
	// image-wide pooling alone.
	Pools       []graph.Pooling
	Eval        bool   // extract features and fit the classifiers
	Pixels      bool   // also fit the classifier on raw pixels
	LabelCounts []int  // also fit on balanced subsets of these many labels (labels.png)
	Features    bool   // write the features and labels as .npy files
	GraphDir    string // write the compiled E-step and M-step graphs there as DOT, if set

	Log      io.Writer   // what happens, phase by phase; nil for nothing
	Progress em.Recorder // told of every batch and epoch of training; optional
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
	Dataset  string    `json:"dataset"`
	Images   int       `json:"images"`
	Kernels  int       `json:"kernels"`
	Width    int       `json:"width"`
	Padding  int       `json:"padding"`
	Batch    int       `json:"batch"`
	Seed     uint64    `json:"seed"`
	Ops      string    `json:"ops"`
	InitFrom string    `json:"init_from"`
	Mixing   bool      `json:"mixing"`
	Repair   em.Repair `json:"repair"`

	LogLik          []float64   `json:"loglik"`
	EpochSeconds    []float64   `json:"epoch_seconds"`
	Epochs          int         `json:"epochs"`
	Status          string      `json:"status"`
	Reseeded        []em.Reseed `json:"reseeded"`
	DistinctKernels int         `json:"distinct_kernels"` // cosine < 0.99 to every kernel before

	// The main pooling's classifier (Options.Pools[0]); every pooling's in
	// Evaluations.
	Pooling       string        `json:"pooling,omitempty"`
	TrainAccuracy *float64      `json:"train_accuracy,omitempty"`
	TestAccuracy  *float64      `json:"test_accuracy,omitempty"`
	Confusion     [][]int       `json:"confusion,omitempty"`
	Classifier    *classify.Fit `json:"classifier,omitempty"`
	Evaluations   []Evaluation  `json:"evaluations,omitempty"`

	PixelTrainAccuracy *float64      `json:"pixel_train_accuracy,omitempty"`
	PixelTestAccuracy  *float64      `json:"pixel_test_accuracy,omitempty"`
	PixelClassifier    *classify.Fit `json:"pixel_classifier,omitempty"`

	// Labels holds the label-efficiency study: the test accuracy of each
	// feature set against the number of labelled training images.
	Labels []LabelPoint `json:"labels,omitempty"`

	TrainSeconds      float64 `json:"train_seconds"`
	FeaturesSeconds   float64 `json:"features_seconds"`
	ClassifierSeconds float64 `json:"classifier_seconds"`
	WallSeconds       float64 `json:"wall_seconds"`
	PeakRSSBytes      int64   `json:"peak_rss_bytes"`
	GoVersion         string  `json:"go_version"`
	GOMAXPROCS        int     `json:"gomaxprocs"`
}

// Evaluation is the softmax classifier on one pooling's features.
type Evaluation struct {
	Pooling       string        `json:"pooling"`
	Features      int           `json:"features"`
	TrainAccuracy float64       `json:"train_accuracy"`
	TestAccuracy  float64       `json:"test_accuracy"`
	Confusion     [][]int       `json:"confusion"`
	Classifier    *classify.Fit `json:"classifier"`
}

// LabelPoint is the test accuracy of each feature set (a pooling's name,
// or "pixels") fitted on a balanced subset of Labels labelled images.
type LabelPoint struct {
	Labels   int                `json:"labels"`
	Accuracy map[string]float64 `json:"accuracy"`
}

// ErrConfig is wrapped by the errors of settings or options that cannot
// run (bad values, a layer that does not fit the images, a batch that does
// not fit in memory): the commands exit with status 2 for them.
var ErrConfig = errors.New("invalid configuration")

// InterruptedError says that a run was stopped (its context cancelled) and
// which whole epoch its checkpoint holds.
type InterruptedError struct {
	Dir   string
	Epoch int // the last complete epoch, 0 if none
	Err   error
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("interrupted; %s holds the checkpoint of epoch %d", e.Dir, e.Epoch)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// Run trains, evaluates and writes every output into opt.Out:
// kernels.png, loglik.png, posterior.png, labels.png, theta.npy,
// config.json, metrics.json and, as asked, the features and the graphs;
// each is written whole or not at all. Two runs never share a directory:
// the second fails with ErrBusy.
func Run(d Data, opt Options) (*Metrics, error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format, args...)
		}
	}
	ctx := opt.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if len(opt.Pools) == 0 {
		opt.Pools = []graph.Pooling{graph.ImageWide}
	}
	n, c, h, w := d.Train.Shape()
	// The settings first, so that a bad configuration touches nothing.
	fresh := opt.Settings
	fresh.Resume = nil
	s, cfg, err := fresh.Normalize(n, c, h, w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, p := range opt.Pools {
		if uh, uw := cfg.Positions(); p.Grid > min(uh, uw) {
			return nil, fmt.Errorf("%w: pooling %s: a %d×%d grid over %d×%d positions", ErrConfig, p.Name(), p.Grid, p.Grid, uh, uw)
		}
	}
	if err := checkMemory(cfg, s.Ops, n); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Out, 0o777); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	unlock, err := lockDir(opt.Out)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if opt.Resume {
		cp, err := em.LoadCheckpoint(opt.Out)
		if err != nil {
			return nil, err
		}
		s.Resume = cp
		if _, _, err := s.Normalize(n, c, h, w); err != nil {
			return nil, fmt.Errorf("experiment: cannot resume from %s: %w", opt.Out, err)
		}
		logf("resuming after epoch %d\n", cp.Epoch)
	} else if err := writeJSON(filepath.Join(opt.Out, "config.json"), config(d, opt, s, cfg, n)); err != nil {
		return nil, err
	}
	ckpt := em.NewCheckpointer(opt.Out, s.Resume)
	interrupted := func(err error) error {
		return &InterruptedError{Dir: opt.Out, Epoch: ckpt.Epoch, Err: err}
	}
	logf("%s: %d images %d×%d×%d, %d kernels %d×%d, padding %d, batch %d, op set %s, init %s\n",
		d.Name, n, c, h, w, cfg.Kernels, cfg.Width, cfg.Width, cfg.Pad, cfg.Batch, s.Ops.Name(), s.InitFrom)
	s.Context = ctx
	s.Recorder = em.Recorders{ckpt}
	if opt.Progress != nil {
		s.Recorder = em.Recorders{ckpt, opt.Progress}
	}
	trainStart := time.Now()
	res, err := em.Train(d.Train, s)
	if errors.Is(err, context.Canceled) {
		return nil, interrupted(err)
	}
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	theta := res.Theta.Data().([]float32)
	m := &Metrics{
		Dataset: d.Name, Images: n, Kernels: cfg.Kernels, Width: cfg.Width, Padding: cfg.Pad, Batch: cfg.Batch,
		Seed: s.Seed, Ops: s.Ops.Name(), InitFrom: s.InitFrom.String(), Mixing: s.Mixing, Repair: s.Repair,
		LogLik: res.LogLik, EpochSeconds: res.EpochSeconds, Epochs: len(res.LogLik), Status: res.Status.String(),
		Reseeded: res.Reseeded, DistinctKernels: em.Distinct(theta, cfg.Kernels, 0.99),
		TrainSeconds: time.Since(trainStart).Seconds(), GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if s.Resume != nil {
		m.TrainSeconds = sum(res.EpochSeconds) // the time of the epochs, across the interruption
	}
	logf("training: %d epochs (%s), %.1f s; %d of %d kernels distinct", m.Epochs, m.Status, m.TrainSeconds, m.DistinctKernels, cfg.Kernels)
	for _, r := range res.Reseeded {
		logf("; re-seeded after epoch %d: %v", r.Epoch, r.Kernels)
	}
	logf("\n")
	if err := writeOutputs(d, opt, res); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, interrupted(ctx.Err())
	}
	if opt.Eval {
		if err := evaluate(ctx, d, opt, res, m, logf); err != nil {
			if ctx.Err() != nil {
				return nil, interrupted(ctx.Err())
			}
			return nil, err
		}
	}
	m.WallSeconds = time.Since(start).Seconds()
	m.PeakRSSBytes = peakRSS()
	if err := writeJSON(filepath.Join(opt.Out, "metrics.json"), m); err != nil {
		return nil, err
	}
	logf("wrote %s in %.1f s (training %.1f s, features %.1f s, classifiers %.1f s; peak RSS %.0f MiB)\n",
		opt.Out, m.WallSeconds, m.TrainSeconds, m.FeaturesSeconds, m.ClassifierSeconds, float64(m.PeakRSSBytes)/(1<<20))
	return m, nil
}

// config is what config.json records: every setting, so that a run can be
// repeated (and resumed), and the options' extra entries (the flags).
func config(d Data, opt Options, s em.Settings, cfg graph.Config, n int) map[string]any {
	var pools []string
	for _, p := range opt.Pools {
		pools = append(pools, p.Name())
	}
	conf := map[string]any{
		"dataset": d.Name, "images": n, "kernels": cfg.Kernels, "width": cfg.Width, "padding": cfg.Pad,
		"batch": cfg.Batch, "max_epochs": s.MaxEpochs, "tol": s.Tol, "seed": s.Seed, "ops": s.Ops.Name(),
		"init_from": s.InitFrom.String(), "init_sample": s.InitSample, "mixing": s.Mixing, "repair": s.Repair,
		"pools": pools, "go_version": runtime.Version(),
	}
	for k, v := range d.Description {
		conf[k] = v
	}
	for k, v := range opt.Config {
		conf[k] = v
	}
	return conf
}

// checkMemory refuses a batch whose estimated memory (em.BatchBytes)
// exceeds what the process may still take, naming a batch that fits.
func checkMemory(cfg graph.Config, ops graph.Ops, images int) error {
	limit, ok := sysmem.Headroom()
	if !ok {
		return nil
	}
	// Leave a tenth for the Go runtime, the classifier and the figures.
	budget := limit.Bytes * 9 / 10
	need := em.BatchBytes(cfg, ops, images)
	if need <= budget {
		return nil
	}
	fit := cfg
	for fit.Batch > 1 && em.BatchBytes(fit, ops, images) > budget {
		fit.Batch = fit.Batch * 3 / 4
	}
	advice := fmt.Sprintf("use -batch %d or less (the result does not depend on the batch size)", fit.Batch)
	if em.BatchBytes(fit, ops, images) > budget {
		advice = "even one image does not fit"
	}
	return fmt.Errorf("%w: a batch of %d images needs about %s, more than the %s this process may still use (%s); %s",
		ErrConfig, cfg.Batch, sysmem.Bytes(need), sysmem.Bytes(limit.Bytes), limit.Source, advice)
}

// writeOutputs writes θ (and the mixing weights), the figures and, if
// asked, the graphs.
func writeOutputs(d Data, opt Options, res *em.Result) error {
	cfg := res.Config
	theta := res.Theta.Data().([]float32)
	if err := em.SaveTheta(filepath.Join(opt.Out, "theta.npy"), res.Theta); err != nil {
		return err
	}
	if res.LogPrior != nil {
		if err := saveNpy(filepath.Join(opt.Out, "log_prior.npy"), res.LogPrior.Data().([]float32), cfg.Kernels); err != nil {
			return err
		}
	}
	if c := cfg.Channels; c == 1 || c == 3 {
		title := fmt.Sprintf("%s: first %d of %d kernels (%d distinct)", d.Name, min(64, cfg.Kernels), cfg.Kernels, em.Distinct(theta, cfg.Kernels, 0.99))
		if err := viz.SaveKernels(filepath.Join(opt.Out, "kernels.png"), title, theta, cfg.Kernels, c, cfg.Width, 64, 8); err != nil {
			return err
		}
	}
	if err := viz.SaveLogLik(filepath.Join(opt.Out, "loglik.png"), d.Name+": log-likelihood per epoch", viz.Curve{Name: "layer 1", LogLik: res.LogLik}); err != nil {
		return err
	}
	if cfg.Channels == 1 && d.Test != nil {
		if err := savePosterior(filepath.Join(opt.Out, "posterior.png"), d.Test, res, 4); err != nil {
			return err
		}
	}
	if opt.GraphDir != "" {
		if err := saveGraphs(opt.GraphDir, res); err != nil {
			return err
		}
	}
	return nil
}

// saveGraphs writes the E-step and M-step graphs of res's layer, as
// compiled for a full batch, as Graphviz DOT files.
func saveGraphs(dir string, res *em.Result) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	e, err := estep.New(res.Config, res.Settings.Ops)
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	defer e.Close()
	m, err := mstep.New(res.Config, res.Settings.Ops)
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	defer m.Close()
	for name, step := range map[string]*graph.Step{"estep.dot": e.Step(), "mstep.dot": m.Step()} {
		g, err := step.Graph(res.Config.Batch)
		if err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
		b, err := dot.Marshal(g)
		if err != nil {
			return fmt.Errorf("experiment: %s: %w", name, err)
		}
		if err := atomicfile.WriteBytes(filepath.Join(dir, name), b); err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
	}
	return nil
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

func sum(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
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
