package experiment

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"calm/classify"
	"calm/dataset"
	"calm/em"
	"calm/estep"
	"calm/experiment/rundir"
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
	Train       dataset.Source // the images the kernels are learned from
	Labelled    dataset.Source // the images the classifier is fitted on (often Train)
	Labels      []byte         // labels of Labelled
	Test        dataset.Source
	TestLabels  []byte
	Classes     int
	Description map[string]any // recorded in config.json (paths, versions)
	// SkippedFiles counts the files the reader left out (undecodable
	// images it was told to skip); recorded in metrics.json.
	SkippedFiles int
}

// Options configure Run.
type Options struct {
	Out string // output directory, created if missing

	// Layers are the layers to train, each by EM on what the ones below
	// make of the images (em.TrainStack); one layer is the paper's model.
	// Their Recorder, Context and Resume are Run's to set.
	Layers []em.StackLayer

	// Whiten, when above 0, whitens the images (em.Whitening, a filter of
	// this odd width estimated from the training images) in front of the
	// first layer, for training and features alike; WhitenEpsilon is its ε
	// (default DefaultWhitenEpsilon).
	Whiten        int
	WhitenEpsilon float64
	// WhitenPatches, when above 0, whitens the patches of this width
	// instead (em.Whitening.Patches): each one, normalised for brightness
	// and contrast and ZCA-whitened, becomes the channels of one position
	// of the first layer's input, whose kernels are then usually 1×1.
	WhitenPatches int

	// Pools are the poolings whose features are evaluated; default, with
	// no LayerPools either, the paper's image-wide pooling alone. The main
	// feature set (metrics.json's top-level accuracies) is the one that
	// validates best, or the first without a validation split; the epoch
	// curve uses the first pooling (of LayerPools' first set, its top
	// layer's, without Pools). With several layers each pooling is
	// evaluated on the top layer, and on all layers together.
	Pools []graph.Pooling
	// LayerPools are feature sets of a stack after those of Pools: every
	// layer's features side by side, layer l pooled by its l-th pooling
	// (one per layer), named by LayerPoolingsName.
	LayerPools [][]graph.Pooling
	Eval       bool // extract features and fit the classifiers
	// Validation is the number of labelled images, the last ones, held out
	// for validation: the classifier is fitted on the labelled images
	// before them, every choice (C with ChooseC, the main feature set, the
	// epoch curve) is made on them, and the chosen classifier is then
	// refitted on every labelled image and scored on the test set once.
	// 0 turns the split off: then nothing can be chosen.
	Validation int
	// StratifiedValidation holds out the validation images class by class:
	// the last images of each class, in proportion to its size, instead of
	// the last ones overall; for data sorted by class, as image folders are.
	StratifiedValidation bool
	// C is the classifier's inverse L2 strength (default 1, scikit-learn's);
	// with ChooseC it is chosen for each feature set from
	// classify.DefaultCGrid by validation.
	C       float64
	ChooseC bool
	// CGrid, with ChooseC, is the values of C validation chooses from,
	// decreasing (and past its edges, classify.ChooseC); default
	// classify.DefaultCGrid.
	CGrid []float64
	// Classifiers are the losses validation chooses the classifier from,
	// for each feature set with its C (classify.Loss); default the
	// softmax alone. The label study fits its feature set's choice.
	Classifiers []classify.Loss
	// EpochCurve evaluates, on the validation images, the main pooling of
	// the top layer's kernels after every epoch of EM (epoch 0: as seeded,
	// before any), the layers below as trained: metrics.json's epochs and
	// epochs.png.
	EpochCurve bool
	// PickEpoch (with EpochCurve) keeps the top layer's kernels of the
	// epoch that validates best on the curve (the fewest epochs on a tie)
	// instead of the last: the number of EM epochs chosen on the validation
	// split. model.json and theta-<l>.npy then hold them.
	PickEpoch bool
	// Mirror fits each feature set's classifier on the labelled images and
	// on their mirror images (dataset.Mirror), with the same labels: twice
	// the rows. Validation images are scored as they are; the epoch curve,
	// the pixels and the label study fit without mirrors.
	Mirror      bool
	Pixels      bool   // also fit the classifier on raw pixels
	LabelCounts []int  // also fit on balanced subsets of these many labels (labels.png)
	Features    bool   // write the features and labels as .npy files
	GraphDir    string // write the compiled E-step and M-step graphs there as DOT, if set

	Log io.Writer // what happens, phase by phase; nil for nothing
	// Progress returns the recorder told of every batch and epoch of layer
	// l (0-based) of layers; optional.
	Progress func(l, layers int) em.Recorder
	// Working, when set, is told as a long pass over images goes on (the
	// features of a split): what it computes, the images done of total,
	// and the time since it began. Each pass ends with done = total.
	Working func(what string, done, total int, elapsed time.Duration)
	// Command is the command line that made the run, every flag as
	// -name=value; config.json records it (-resume reads it back).
	Command []string

	// Context, when cancelled, stops training at the next batch and
	// evaluation between its phases, with an *InterruptedError.
	Context context.Context
	// Resume continues the interrupted run whose model and checkpoint are
	// in Out; config.json is left as the first run wrote it.
	Resume bool
}

// Metrics is what metrics.json holds.
type Metrics struct {
	Dataset string `json:"dataset"`
	Images  int    `json:"images"`
	// SkippedFiles is Data.SkippedFiles.
	SkippedFiles int `json:"skipped_files,omitempty"`
	TrainingRecord

	// Layers holds each layer's training, the first the paper's layer.
	Layers []LayerMetrics `json:"layers"`

	// The main feature set's classifier (the one that validates best; the
	// first pooling of the top layer without a validation split); every
	// feature set's in Evaluations.
	// ValidationImages is Options.Validation: the labelled images the
	// choices were made on.
	ValidationImages   int           `json:"validation_images"`
	Pooling            string        `json:"pooling,omitempty"`
	TrainAccuracy      *float64      `json:"train_accuracy,omitempty"`
	ValidationAccuracy *float64      `json:"validation_accuracy,omitempty"`
	TestAccuracy       *float64      `json:"test_accuracy,omitempty"`
	Confusion          [][]int       `json:"confusion,omitempty"`
	Classifier         *classify.Fit `json:"classifier,omitempty"`
	Evaluations        []Evaluation  `json:"evaluations,omitempty"`

	PixelTrainAccuracy      *float64      `json:"pixel_train_accuracy,omitempty"`
	PixelValidationAccuracy *float64      `json:"pixel_validation_accuracy,omitempty"`
	PixelTestAccuracy       *float64      `json:"pixel_test_accuracy,omitempty"`
	PixelClassifier         *classify.Fit `json:"pixel_classifier,omitempty"`

	// Epochs is the epoch curve (Options.EpochCurve): the validation
	// accuracy of the top layer's kernels after each epoch, 0 the seeding.
	Epochs []EpochPoint `json:"epochs,omitempty"`
	// ChosenEpoch is the epoch whose kernels the top layer keeps, with
	// Options.PickEpoch; nil otherwise (the last).
	ChosenEpoch *int `json:"chosen_epoch,omitempty"`

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

// LayerMetrics is one layer's training: its record (configuration and
// history, as model.json has it, without the weights) and what was
// measured of it.
type LayerMetrics struct {
	em.LayerRecord
	Epochs          int     `json:"epochs"`
	DistinctKernels int     `json:"distinct_kernels"` // cosine < 0.99 to every kernel before
	TrainSeconds    float64 `json:"train_seconds"`
}

// Evaluation is the softmax classifier on one feature set: its validation
// accuracy (fitted on the labelled images before the validation images),
// then the train and test accuracy of the same C refitted on every
// labelled image.
type Evaluation struct {
	Pooling            string        `json:"pooling"`
	Features           int           `json:"features"`
	Loss               classify.Loss `json:"loss"` // the classifier's, chosen by validation among Options.Classifiers
	C                  float64       `json:"c"`
	CGrid              []float64     `json:"c_grid,omitempty"`              // the values of C chosen from, when chosen
	ValidationByC      []float64     `json:"validation_by_c,omitempty"`     // the validation accuracy of each, with the loss chosen
	ValidationByLoss   []float64     `json:"validation_by_loss,omitempty"`  // the best validation accuracy of each of Options.Classifiers, when more than one
	ValidationAccuracy *float64      `json:"validation_accuracy,omitempty"` // nil without a validation split
	TrainAccuracy      float64       `json:"train_accuracy"`
	TestAccuracy       float64       `json:"test_accuracy"`
	Confusion          [][]int       `json:"confusion"`
	Classifier         *classify.Fit `json:"classifier"`
}

// LabelPoint is the label study at one size: each feature set fitted on a
// balanced subset of Labels labelled images.
type LabelPoint struct {
	Labels int        `json:"labels"`
	Fits   []LabelFit `json:"fits"`
}

// LabelFit is one feature set's fit of a LabelPoint: its test accuracy and
// its C (chosen inside the subset, or the one given).
type LabelFit struct {
	Pooling      string  `json:"pooling"` // a feature set's name, or "pixels"
	TestAccuracy float64 `json:"test_accuracy"`
	C            float64 `json:"c"`
}

// Fit returns the fit of the named feature set, or false.
func (p LabelPoint) Fit(pooling string) (LabelFit, bool) {
	for _, f := range p.Fits {
		if f.Pooling == pooling {
			return f, true
		}
	}
	return LabelFit{}, false
}

// DefaultWhitenEpsilon is the default ε of the whitening: for pixels in
// [0, 1], it keeps directions whose variance is below about 0.1 from being
// blown up to unit variance (noise, and the blank background).
const DefaultWhitenEpsilon = 0.1

// ErrConfig is wrapped by the errors of settings or options that cannot
// run (bad values, a layer that does not fit its input, a batch that does
// not fit in memory): the commands exit with status 2 for them.
var ErrConfig = errors.New("invalid configuration")

// stoppable returns d with every source's reads failing once ctx is
// cancelled.
func (d Data) stoppable(ctx context.Context) Data {
	for _, src := range []*dataset.Source{&d.Train, &d.Labelled, &d.Test} {
		if *src != nil {
			*src = stoppableSource{*src, ctx}
		}
	}
	return d
}

// stoppableSource is a Source whose reads fail once its context is
// cancelled.
type stoppableSource struct {
	dataset.Source
	ctx context.Context
}

func (s stoppableSource) Read(dst []float32, start int) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("experiment: %w", context.Cause(s.ctx))
	}
	return s.Source.Read(dst, start)
}

// watched returns src, whose reads tell opt.Working how a pass called
// what goes on (src itself without opt.Working).
func watched(src dataset.Source, opt Options, what string) dataset.Source {
	if opt.Working == nil {
		return src
	}
	n, _, _, _ := src.Shape()
	return &watchedSource{Source: src, working: opt.Working, what: what, total: n}
}

// watchedSource is a Source that reports the images read so far.
type watchedSource struct {
	dataset.Source
	working func(string, int, int, time.Duration)
	what    string
	total   int
	done    int
	start   time.Time
}

func (s *watchedSource) Read(dst []float32, start int) error {
	if s.done == 0 {
		s.start = time.Now()
	}
	if err := s.Source.Read(dst, start); err != nil {
		return err
	}
	_, c, h, w := s.Source.Shape()
	s.done = min(s.total, s.done+len(dst)/(c*h*w))
	s.working(s.what, s.done, s.total, time.Since(s.start))
	return nil
}

// InterruptedError says that a run was stopped (its context cancelled) and
// which whole epoch of which layer its checkpoint holds.
type InterruptedError struct {
	Dir     string
	Layer   int  // 1-based
	Epoch   int  // the last complete epoch of Layer, 0 if none
	Trained bool // every layer was trained: the run stopped in its evaluation
	Err     error
}

func (e *InterruptedError) Error() string {
	if e.Trained {
		return fmt.Sprintf("interrupted after training; %s holds the trained layers (model.json: cmd/calm -trained %s -data DIR -features writes their features)", e.Dir, e.Dir)
	}
	return fmt.Sprintf("interrupted; %s holds the checkpoint of layer %d, epoch %d", e.Dir, e.Layer, e.Epoch)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// Run trains the layers, evaluates them and writes every output into
// opt.Out: model.json and theta-<l>.npy (the layers), kernels-<l>.png,
// loglik.png, posterior.png, labels.png, config.json, metrics.json and, as
// asked, the features and the graphs; each is written whole or not at
// all. Each layer checkpoints after every epoch into layer-<l>/. Two runs
// never share a directory: the second fails with rundir.ErrBusy.
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
	if len(opt.Pools) == 0 && len(opt.LayerPools) == 0 {
		opt.Pools = []graph.Pooling{graph.ImageWide}
	}
	n, c, h, w := d.Train.Shape()
	// The settings first, so that a bad configuration touches nothing.
	if opt.Eval {
		if err := checkEval(d, opt); err != nil {
			return nil, err
		}
	}
	layers, cfgs, err := normalize(opt, n, c, h, w)
	if err != nil {
		return nil, err
	}
	if err := checkMemory(cfgs, layers[0].Settings.Ops, n); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Out, 0o777); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	unlock, err := rundir.Lock(opt.Out)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var done []em.Trained
	var resume *em.Checkpoint
	if opt.Resume {
		if done, resume, err = rundir.Load(opt.Out, layers, cfgs, n); err != nil {
			return nil, err
		}
		if len(done) == len(layers) {
			logf("resuming after training: every layer (%d) is trained\n", len(done))
		} else {
			logf("resuming layer %d after epoch %d\n", len(done)+1, epochOf(resume))
		}
	} else {
		if err := rundir.Clear(opt.Out); err != nil {
			return nil, err
		}
		if err := rundir.WriteJSON(filepath.Join(opt.Out, rundir.ConfigFile), config(d, opt, layers, cfgs, n)); err != nil {
			return nil, err
		}
	}
	// Each layer checkpoints into its own directory and reports its
	// progress; a cancelled context stops the layer under way.
	ckpts := make([]*em.Checkpointer, len(layers))
	for l := range layers {
		dir := rundir.LayerDir(opt.Out, l)
		if l >= len(done) {
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return nil, fmt.Errorf("experiment: %w", err)
			}
		}
		var from *em.Checkpoint
		if l == len(done) {
			from = resume
		}
		ckpts[l] = em.NewCheckpointer(dir, from)
		s := &layers[l].Settings
		s.Context, s.Resume = ctx, from
		recs := em.Recorders{ckpts[l]}
		if opt.EpochCurve && l == len(layers)-1 {
			recs = append(recs, epochSaver(dir))
		}
		if opt.Progress != nil {
			recs = append(recs, opt.Progress(l, len(layers)))
		}
		s.Recorder = recs
	}
	for l, cfg := range cfgs {
		init := layers[l].Settings.InitFrom.String()
		if layers[l].Settings.Init != nil {
			init = "given θ"
		}
		logf("%s: layer %d of %d: %d×%d×%d inputs, %d kernels %d×%d, padding %d, batch %d, op set %s, init %s\n",
			d.Name, l+1, len(cfgs), cfg.Channels, cfg.Rows, cfg.Cols, cfg.Kernels, cfg.Width, cfg.Width, cfg.Pad, cfg.Batch,
			layers[l].Settings.Ops.Name(), init)
	}
	raw := d // the pixels' classifier sees the images as they are
	var wh *em.Whitening
	if opt.Whiten > 0 || opt.WhitenPatches > 0 {
		var closeAll func()
		if d, wh, closeAll, err = whiten(d, opt, layers[0].Settings); err != nil {
			return nil, err
		}
		defer closeAll()
		if wh.Patches {
			logf("whitening the %d×%d patches, normalised, in front of layer 1 (ε = %v): %d channels at each of %d×%d positions\n",
				wh.Width, wh.Width, wh.Epsilon, cfgs[0].Channels, cfgs[0].Rows, cfgs[0].Cols)
		} else {
			logf("whitening the images by a %d×%d ZCA filter (ε = %v) in front of layer 1\n", wh.Width, wh.Width, wh.Epsilon)
		}
	}
	// The epoch curve, from the whitened images, stopped with the run. With
	// PickEpoch its points are computed as the top layer trains, which
	// stops once they have fallen for stopAfter epochs.
	top := len(layers) - 1
	var cv *curve
	if opt.Eval && opt.EpochCurve {
		cv = newCurve(d.stoppable(ctx), opt, top, layers[0].Settings.Ops, cfgs[0].Batch, logf)
		if opt.PickEpoch {
			cv.below = &em.Stack{Layers: done[:min(len(done), top)], Whitening: wh}
			cv.topCfg, cv.topTr = cfgs[top], layers[top].Transform
			layers[top].Settings.Recorder = em.Recorders{layers[top].Settings.Recorder, cv}
			if resume != nil && len(done) == top {
				stop, err := cv.replay(resume.Epoch)
				if err != nil {
					return nil, err
				}
				if stop { // interrupted after EM stopped, before its layer was saved
					layers[top].Settings.MaxEpochs = resume.Epoch
				}
			}
		}
	}
	st, err := em.TrainStack(d.Train, layers, done, 0, func(st *em.Stack) error {
		st.Whitening = wh
		if cv != nil && len(st.Layers) <= top {
			cv.below = st
		}
		return em.SaveStack(opt.Out, st)
	})
	if errors.Is(err, context.Canceled) {
		l := len(done)
		if st, lerr := em.LoadStack(opt.Out); lerr == nil {
			l = len(st.Layers)
		}
		l = min(l, len(layers)-1)
		return nil, &InterruptedError{Dir: opt.Out, Layer: l + 1, Epoch: ckpts[l].Epoch, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	st.Whitening = wh // a resumed run's trained layers come without it
	if cv != nil && cv.stopped && st.Layers[top].Status != em.Stopped {
		// EM stopped on the curve before an interruption; the resumed
		// run ended on the epoch limit it was given.
		st.Layers[top].Status = em.Stopped
		if err := em.SaveStack(opt.Out, st); err != nil {
			return nil, err
		}
	}
	s0 := layers[0].Settings
	m := &Metrics{Dataset: d.Name, Images: n, TrainingRecord: newTrainingRecord(s0, cfgs[0].Batch), ValidationImages: opt.Validation, SkippedFiles: d.SkippedFiles,
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	// Stopped once training is done: the checkpoint is the top layer's last.
	stopped := func() error {
		return &InterruptedError{Dir: opt.Out, Layer: len(layers), Epoch: ckpts[len(layers)-1].Epoch, Trained: true, Err: ctx.Err()}
	}
	// From here on a cancelled run stops within a batch of features or an
	// iteration of a fit.
	d = d.stoppable(ctx)
	var curve *curveFeatures
	if cv != nil {
		if curve, err = cv.finish(ctx, st, m); err != nil {
			if ctx.Err() != nil {
				return nil, stopped()
			}
			return nil, err
		}
		if opt.PickEpoch {
			if err := pickEpoch(opt, st, m, logf); err != nil {
				return nil, err
			}
		}
	}
	for l, t := range st.Layers {
		rec := t.Record(l == len(st.Layers)-1)
		rec.LogPrior, rec.Scale, rec.Shift = nil, nil, nil
		lm := LayerMetrics{LayerRecord: rec, Epochs: len(t.LogLik),
			DistinctKernels: em.Distinct(t.Theta.Data().([]float32), t.Config.Kernels, 0.99), TrainSeconds: sum(t.EpochSeconds)}
		m.Layers = append(m.Layers, lm)
		m.TrainSeconds += lm.TrainSeconds
		logf("layer %d: %d epochs (%s), %.1f s; %d of %d kernels distinct", l+1, lm.Epochs, lm.Status, lm.TrainSeconds, lm.DistinctKernels, lm.Kernels)
		for _, r := range t.Reseeded {
			logf("; re-seeded after epoch %d: %v", r.Epoch, r.Kernels)
		}
		logf("\n")
	}
	if err := writeOutputs(d, raw, opt, st, s0.Ops); err != nil {
		if ctx.Err() != nil {
			return nil, stopped()
		}
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, stopped()
	}
	if opt.Eval {
		if err := evaluate(ctx, d, raw, opt, st, s0.Ops, cfgs[0].Batch, curve, m, logf); err != nil {
			if ctx.Err() != nil {
				return nil, stopped()
			}
			return nil, err
		}
	}
	m.WallSeconds = time.Since(start).Seconds()
	m.PeakRSSBytes = sysmem.PeakRSS()
	if err := rundir.WriteJSON(filepath.Join(opt.Out, rundir.MetricsFile), m); err != nil {
		return nil, err
	}
	logf("wrote %s in %.1f s (training %.1f s, features %.1f s, classifiers %.1f s; peak RSS %.0f MiB)\n",
		opt.Out, m.WallSeconds, m.TrainSeconds, m.FeaturesSeconds, m.ClassifierSeconds, float64(m.PeakRSSBytes)/(1<<20))
	return m, nil
}

// normalize fills in and checks the settings of every layer, each for the
// input the layer below gives it, and checks that the poolings fit every
// layer's positions. Its errors wrap ErrConfig.
func normalize(opt Options, n, c, h, w int) ([]em.StackLayer, []graph.Config, error) {
	if len(opt.Layers) == 0 {
		return nil, nil, fmt.Errorf("%w: no layers", ErrConfig)
	}
	if opt.Whiten < 0 || opt.Whiten > 0 && (opt.Whiten%2 == 0 || opt.Whiten > min(h, w)) || opt.WhitenEpsilon < 0 {
		return nil, nil, fmt.Errorf("%w: whitening by a filter of width %d (ε %v) for %d×%d images: want an odd width that fits, ε ≥ 0", ErrConfig, opt.Whiten, opt.WhitenEpsilon, h, w)
	}
	switch f := opt.WhitenPatches; {
	case f < 0 || f > min(h, w):
		return nil, nil, fmt.Errorf("%w: whitening patches of width %d for %d×%d images: want a width that fits", ErrConfig, f, h, w)
	case f > 0 && opt.Whiten > 0:
		return nil, nil, fmt.Errorf("%w: whitening both the images (width %d) and their patches (width %d): choose one", ErrConfig, opt.Whiten, f)
	case f > 0:
		// Layer 1 sees each patch as the channels of one position.
		c, h, w = c*f*f, h-f+1, w-f+1
	}
	layers := append([]em.StackLayer(nil), opt.Layers...)
	if _, err := FeatureSets(opt.Pools, opt.LayerPools, len(layers)); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var cfgs []graph.Config
	for l := range layers {
		s := layers[l].Settings
		s.Resume = nil
		s, cfg, err := s.Normalize(n, c, h, w)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: layer %d: %w", ErrConfig, l+1, err)
		}
		if l > 0 && s.Ops.Name() != layers[0].Settings.Ops.Name() {
			return nil, nil, fmt.Errorf("%w: layer %d runs op set %s, layer 1 %s: a stack runs one", ErrConfig, l+1, s.Ops.Name(), layers[0].Settings.Ops.Name())
		}
		layers[l].Settings = s
		cfgs = append(cfgs, cfg)
		// The poolings matter only to the evaluation.
		uh, uw := cfg.Positions()
		pools := slices.Clip(opt.Pools)
		for _, ps := range opt.LayerPools {
			pools = append(pools, ps[l])
		}
		for _, p := range pools {
			if opt.Eval && p.Grid > min(uh, uw) {
				return nil, nil, fmt.Errorf("%w: pooling %s: a %d×%d grid over layer %d's %d×%d positions (pool image-wide, -pool image, or train without evaluating, -eval=false)",
					ErrConfig, p.Name(), p.Grid, p.Grid, l+1, uh, uw)
			}
		}
		next := layers[l].Transform.Next(cfg, 1, 1, 0)
		c, h, w = next.Channels, next.Rows, next.Cols
	}
	return layers, cfgs, nil
}

func epochOf(cp *em.Checkpoint) int {
	if cp == nil {
		return 0
	}
	return cp.Epoch
}

// RunConfig is what config.json records: every setting of the run, once,
// so that it can be repeated, and the command line that made it (from
// which -resume takes its flags).
type RunConfig struct {
	Dataset     string           `json:"dataset"`
	Images      int              `json:"images"` // training images, the validation split included
	Description map[string]any   `json:"description,omitempty"`
	Layers      []em.LayerRecord `json:"layers"`
	TrainingRecord
	Whiten        int               `json:"whiten,omitempty"`         // the ZCA filter's width, 0 for none
	WhitenPatches int               `json:"whiten_patches,omitempty"` // the whitened patches' width, 0 for none
	WhitenEps     float64           `json:"whiten_epsilon,omitempty"`
	Pools         []graph.Pooling   `json:"pools,omitempty"`
	LayerPools    [][]graph.Pooling `json:"layer_pools,omitempty"`
	Validation    int               `json:"validation"`
	C             float64           `json:"c,omitempty"`           // the classifier's inverse L2 strength, unless chosen
	ChooseC       bool              `json:"choose_c,omitempty"`    // C chosen by validation
	Classifiers   []classify.Loss   `json:"classifiers,omitempty"` // the classifiers validation chooses from
	CGrid         []float64         `json:"c_grid,omitempty"`      // the values of C validation chooses from, when not the default
	Mirror        bool              `json:"mirror,omitempty"`      // the classifiers fitted on the labelled images' mirrors too
	Command       []string          `json:"command,omitempty"`
	GoVersion     string            `json:"go_version"`
}

// TrainingRecord is how config.json and metrics.json record the training
// settings of a run's first layer (each layer's shape is in its
// em.LayerRecord); its fields sit in their records' JSON objects.
type TrainingRecord struct {
	Batch           int           `json:"batch"`
	Seed            uint64        `json:"seed"`
	Ops             string        `json:"ops"`
	InitFrom        em.InitMethod `json:"init_from"`
	InitSample      int           `json:"init_sample"`
	Model           graph.Model   `json:"model"`
	Mixing          bool          `json:"mixing"`
	Stepwise        float64       `json:"stepwise,omitempty"` // α of stepwise EM; 0 for batch EM
	Anneal          float64       `json:"anneal,omitempty"`   // β of the first epoch; 0 for none
	LearnVariance   bool          `json:"learn_variance,omitempty"`
	KernelVariances bool          `json:"kernel_variances,omitempty"`
	Repair          em.Repair     `json:"repair"`
	Tol             float64       `json:"tol"`
}

// newTrainingRecord returns the record of settings s (defaults filled in)
// with batches of batch images.
func newTrainingRecord(s em.Settings, batch int) TrainingRecord {
	return TrainingRecord{Batch: batch, Seed: s.Seed, Ops: s.Ops.Name(), InitFrom: s.InitFrom, InitSample: s.InitSample, Model: s.Model,
		Mixing: s.Mixing, Stepwise: s.Stepwise, Anneal: s.Anneal, LearnVariance: s.LearnVariance, KernelVariances: s.KernelVariances, Repair: s.Repair, Tol: s.Tol}
}

// config returns the run's RunConfig.
func config(d Data, opt Options, layers []em.StackLayer, cfgs []graph.Config, n int) RunConfig {
	s := layers[0].Settings
	c := RunConfig{Dataset: d.Name, Images: n, Description: d.Description, TrainingRecord: newTrainingRecord(s, cfgs[0].Batch),
		Whiten: opt.Whiten, WhitenPatches: opt.WhitenPatches, Pools: opt.Pools, LayerPools: opt.LayerPools, Validation: opt.Validation, C: opt.C, ChooseC: opt.ChooseC, CGrid: opt.CGrid, Classifiers: opt.Classifiers, Mirror: opt.Mirror, Command: opt.Command, GoVersion: runtime.Version()}
	if opt.Whiten > 0 || opt.WhitenPatches > 0 {
		c.WhitenEps = cmp.Or(opt.WhitenEpsilon, DefaultWhitenEpsilon)
	}
	for l, cfg := range cfgs {
		r := em.NewLayerRecord(cfg)
		if l < len(cfgs)-1 {
			r.Transform = &layers[l].Transform
		}
		r.MaxEpochs = layers[l].Settings.MaxEpochs
		c.Layers = append(c.Layers, r)
	}
	return c
}

// checkMemory refuses a run whose layers' batches need more memory
// (em.BatchBytes, and for layer l the maps of the layers below it) than
// the process may still take, naming a batch that fits.
func checkMemory(cfgs []graph.Config, ops graph.Ops, images int) error {
	limit, ok := sysmem.Headroom()
	if !ok {
		return nil
	}
	// Leave a tenth for the Go runtime, the classifier and the figures.
	budget := limit.Bytes * 9 / 10
	need := func(batch int) int64 {
		var most, below int64
		for _, cfg := range cfgs {
			cfg.Batch = min(batch, images)
			most = max(most, em.BatchBytes(cfg, ops, images)+below)
			// The layer above reads this one's log joint and transformed maps.
			below += 2 * int64(cfg.Batch) * int64(cfg.MapLen()) * 4
		}
		return most
	}
	batch := cfgs[0].Batch
	if need(batch) <= budget {
		return nil
	}
	// The batch to suggest leaves a margin: the process's headroom moves a
	// little from run to run.
	fit := batch
	for fit > 1 && need(fit) > budget*4/5 {
		fit = fit * 3 / 4
	}
	advice := fmt.Sprintf("use -batch %d or less (the batch changes results by float rounding only)", fit)
	if need(fit) > budget {
		advice = "even one image does not fit"
	}
	return fmt.Errorf("%w: a batch of %d images needs about %s, more than the %s this process may still use (%s); %s",
		ErrConfig, batch, sysmem.Bytes(need(batch)), sysmem.Bytes(limit.Bytes), limit.Source, advice)
}

// writeOutputs writes the figures and, if asked, the graphs (the layers'
// θ are in model.json's files already); d is the data as layer 1 sees it
// (whitened, if it is), raw as it was read.
func writeOutputs(d, raw Data, opt Options, st *em.Stack, ops graph.Ops) error {
	var curves []viz.Curve
	for l, t := range st.Layers {
		cfg := t.Config
		path := filepath.Join(opt.Out, rundir.KernelsFigure(l))
		theta := t.Theta.Data().([]float32)
		distinct := em.Distinct(theta, cfg.Kernels, 0.99)
		switch {
		case l == 0 && st.Whitening != nil:
			// Kernels of whitened images, drawn as the filters they apply
			// to the images.
			shown := min(64, cfg.Kernels)
			filters, side, err := st.Whitening.ImageFilters(theta[:shown*cfg.KernelLen()], shown, cfg.Width)
			if err != nil {
				return err
			}
			if c := st.Whitening.Filter.Shape()[1]; c == 1 || c == 3 {
				title := fmt.Sprintf("%s: %d of %d kernels as image filters (%d distinct)", d.Name, shown, cfg.Kernels, distinct)
				if err := viz.SaveKernels(path, title, filters, shown, c, side, 64, 8); err != nil {
					return err
				}
			}
		case l == 0 && (cfg.Channels == 1 || cfg.Channels == 3):
			title := fmt.Sprintf("%s: layer 1, first %d of %d kernels (%d distinct)", d.Name, min(64, cfg.Kernels), cfg.Kernels, distinct)
			if err := viz.SaveKernels(path, title, theta, cfg.Kernels, cfg.Channels, cfg.Width, 64, 8); err != nil {
				return err
			}
		case l > 0 && d.Test != nil:
			// A kernel above the first lives on the maps below, not on
			// pixels: show the pixel patches it explains best (of the
			// images as they are, when layer 1 sees whitened patches as
			// channels).
			const images, top, shown = 2000, 9, 64
			pixels := d.Test
			if st.Whitening != nil && st.Whitening.Patches {
				pixels = raw.Test
			}
			_, c, _, _ := pixels.Shape()
			if c != 1 && c != 3 {
				break
			}
			tiles, side, err := st.BestPatches(d.Test, pixels, l, images, top, shown, ops)
			if err != nil {
				return err
			}
			k := min(shown, st.Layers[l].Config.Kernels)
			title := fmt.Sprintf("%s: layer %d, first %d of %d kernels: mean of the %d test patches each fits best (%d×%d pixels)",
				d.Name, l+1, k, st.Layers[l].Config.Kernels, top, side, side)
			if err := viz.SaveKernels(path, title, tiles, k, c, side, 64, 8); err != nil {
				return err
			}
		}
		if len(t.LogLik) > 0 {
			curves = append(curves, viz.Curve{Name: fmt.Sprintf("layer %d", l+1), LogLik: kernelLogLik(t.Result), Trained: t.FinalLogLik != nil})
		}
	}
	if len(curves) > 0 {
		if err := viz.SaveLogLik(filepath.Join(opt.Out, rundir.LogLikFigure), d.Name+": log-likelihood per epoch", curves...); err != nil {
			return err
		}
	}
	if raw.Test != nil {
		if _, c, _, _ := raw.Test.Shape(); c == 1 || c == 3 {
			if err := savePosterior(filepath.Join(opt.Out, rundir.PosteriorFigure), d.Test, raw.Test, st.Layers[0].Result, st.Whitening, ops, 4); err != nil {
				return err
			}
		}
	}
	if opt.GraphDir != "" {
		if err := saveGraphs(opt.GraphDir, st, ops); err != nil {
			return err
		}
	}
	return nil
}

// saveGraphs writes each layer's E-step and M-step graphs, as compiled for
// a full batch, as Graphviz DOT files: estep-<l>.dot and mstep-<l>.dot.
func saveGraphs(dir string, st *em.Stack, ops graph.Ops) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	for l, t := range st.Layers {
		e, err := estep.New(t.Config, ops)
		if err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
		m, err := mstep.New(t.Config, ops)
		if err != nil {
			e.Close()
			return fmt.Errorf("experiment: %w", err)
		}
		for name, step := range map[string]*graph.Step{fmt.Sprintf("estep-%d.dot", l+1): e.Step(), fmt.Sprintf("mstep-%d.dot", l+1): m.Step()} {
			g, err := step.Graph(t.Config.Batch)
			if err == nil {
				var b []byte
				if b, err = dot.Marshal(g); err == nil {
					err = atomicfile.WriteBytes(filepath.Join(dir, name), b)
				}
			}
			if err != nil {
				e.Close()
				m.Close()
				return fmt.Errorf("experiment: %s: %w", name, err)
			}
		}
		e.Close()
		m.Close()
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

// patchWhiteningSample is the number of patches a whitening of patches
// is estimated from.
const patchWhiteningSample = 100000

// whiten returns d with its images whitened (Options.Whiten), the
// whitening, estimated from d.Train with the first layer's seed, and a
// function that releases the whitened sources.
func whiten(d Data, opt Options, s em.Settings) (Data, *em.Whitening, func(), error) {
	eps := opt.WhitenEpsilon
	if eps == 0 {
		eps = DefaultWhitenEpsilon
	}
	var wh *em.Whitening
	var err error
	if opt.WhitenPatches > 0 {
		// A patch of C·f·f values has as many directions to estimate.
		wh, err = em.NewPatchWhitening(d.Train, opt.WhitenPatches, eps, em.DefaultContrast, patchWhiteningSample, s.Seed)
	} else {
		wh, err = em.NewWhitening(d.Train, opt.Whiten, eps, em.DefaultInitSample, s.Seed)
	}
	if err != nil {
		return d, nil, nil, err
	}
	var made []*em.Whitened
	closeAll := func() {
		for _, w := range made {
			w.Close()
		}
	}
	for _, src := range []*dataset.Source{&d.Train, &d.Labelled, &d.Test} {
		if *src == nil {
			continue
		}
		w, err := wh.Source(*src, s.Ops, s.Batch)
		if err != nil {
			closeAll()
			return d, nil, nil, err
		}
		made = append(made, w)
		*src = w
	}
	return d, wh, closeAll, nil
}
