package experiment

import (
	"calm/classify"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"calm/em"
	"calm/estep"
	"calm/experiment/rundir"
	"calm/graph"
	"calm/viz"
)

// EpochPoint is the validation accuracy of the top layer's kernels after
// Epoch epochs of EM (0: as seeded), with the C validation chose for them,
// their distinct kernels and their log-likelihood on the training images.
type EpochPoint struct {
	Epoch              int           `json:"epoch"`
	ValidationAccuracy float64       `json:"validation_accuracy"`
	Loss               classify.Loss `json:"loss"`
	C                  float64       `json:"c"`
	DistinctKernels    int           `json:"distinct_kernels"`
	LogLik             float64       `json:"loglik,omitempty"` // 0 where not measured (a layer trained before calm measured it)
}

// kernelLogLik returns the LL of the layer's kernels after each epoch,
// from the seeding (0) on: each epoch's LL, which is under the kernels
// before its update, then the LL of the trained kernels when it was
// measured (em.Result.FinalLogLik; else the list ends an epoch short).
func kernelLogLik(r *em.Result) []float64 {
	ll := slices.Clone(r.LogLik)
	if r.FinalLogLik != nil {
		ll = append(ll, *r.FinalLogLik)
	}
	return ll
}

// epochSaver is an em.Recorder that keeps the kernels of every epoch,
// seeding included, in layer directory dir, so that the epoch curve
// survives an interrupted and resumed run.
type epochSaver string

func (dir epochSaver) Record(e em.Event) error {
	cp := e.State
	if e.Seeded != nil {
		cp = e.Seeded
	}
	if cp == nil {
		return nil
	}
	d := rundir.EpochDir(string(dir), cp.Epoch)
	if err := os.MkdirAll(d, 0o777); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	if _, err := em.SaveCheckpoint(d, cp, ""); err != nil {
		return err
	}
	return nil
}

// A curve is the epoch curve under way: the validation accuracy of the
// main pooling of the top layer under its kernels after each epoch
// (metrics' Epochs, epochs.png), from features of the labelled images, the
// classifier fitted before the validation images and scored on them, C by
// validation with ChooseC. The test set is not looked at. Its points are
// computed while the top layer trains (Record, with PickEpoch) and the
// rest after (finish); it keeps the features of the epoch whose kernels
// the run will keep, for the evaluation.
type curve struct {
	d     Data // whitened, its reads stopped with the run
	opt   Options
	e     *evaluator
	pool  graph.Pooling
	top   int
	ops   graph.Ops
	batch int
	logf  func(string, ...any)

	points map[int]EpochPoint // by epoch, without LogLik
	kept   *curveFeatures     // of the best epoch so far (PickEpoch) or the last
	keptAt int

	// While training: the layers below the top, their whitening, and how
	// many points in a row have fallen below the best.
	below   *em.Stack
	topCfg  graph.Config
	topTr   graph.Transform
	best    float64
	fallen  int
	stopped bool // EM stopped on the curve
}

func newCurve(d Data, opt Options, top int, ops graph.Ops, batch int, logf func(string, ...any)) *curve {
	return &curve{d: d, opt: opt, e: newEvaluator(d, opt, nil, logf), pool: curvePooling(opt), top: top, ops: ops, batch: batch, logf: logf,
		points: map[int]EpochPoint{}, best: -1}
}

// stopAfter is how many epochs in a row the curve may fall below its best
// before EM stops (with PickEpoch, which keeps the best epoch's kernels).
const stopAfter = 2

// Record implements em.Recorder for the top layer: it computes the point
// of the seeded kernels and of each epoch's as they come, and stops EM
// once stopAfter points in a row have fallen below the best.
func (c *curve) Record(e em.Event) error {
	cp := e.State
	if e.Seeded != nil {
		cp = e.Seeded
	}
	if cp == nil || c.below == nil {
		return nil
	}
	return c.observe(cp, e.State != nil)
}

// observe computes the point of the top layer's kernels cp and, after an
// epoch (endOfEpoch), returns em.Stop once stopAfter points in a row have
// fallen below the best.
func (c *curve) observe(cp *em.Checkpoint, endOfEpoch bool) error {
	top := em.Trained{Result: &em.Result{Layer: em.Layer{Pad: c.topCfg.Pad}, Config: c.topCfg}, Transform: c.topTr}
	st := &em.Stack{Layers: append(slices.Clone(c.below.Layers), top), Whitening: c.below.Whitening}
	p, err := c.point(st, cp, cp.Epoch)
	if err != nil {
		return err
	}
	if p.ValidationAccuracy > c.best {
		c.best, c.fallen = p.ValidationAccuracy, 0
		return nil
	}
	if c.fallen++; c.fallen >= stopAfter && endOfEpoch {
		c.stopped = true
		c.logf("epoch curve: %d epochs in a row below the best (%.2f %%): EM stops after epoch %d\n", c.fallen, 100*c.best, cp.Epoch)
		return em.Stop
	}
	return nil
}

// replay observes the kept kernels of epochs 0…last of a run resumed
// after epoch last, as its training did, so that EM stops where it would
// have without the interruption; it reports whether they stop it.
func (c *curve) replay(last int) (bool, error) {
	dir := rundir.LayerDir(c.opt.Out, c.top)
	for epoch := 0; epoch <= last; epoch++ {
		cp, err := em.LoadCheckpoint(rundir.EpochDir(dir, epoch))
		if errors.Is(err, em.ErrNoCheckpoint) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("experiment: epoch curve: %w", err)
		}
		switch err := c.observe(cp, epoch > 0); {
		case errors.Is(err, em.Stop):
			return true, nil
		case err != nil:
			return false, err
		}
	}
	return false, nil
}

// point computes, once, the curve's point of epoch under the stack st with
// its top layer's kernels those of cp.
func (c *curve) point(st *em.Stack, cp *em.Checkpoint, epoch int) (EpochPoint, error) {
	if p, ok := c.points[epoch]; ok {
		return p, nil
	}
	start := time.Now()
	layers := estep.Pooled(c.pool, c.top)
	x, err := em.StackFeatures(watched(c.d.Labelled, c.opt, fmt.Sprintf("epoch curve: features (%s) after epoch %d", c.pool.Name(), epoch)),
		withTopKernels(st, cp), layers, c.ops, featureBatchFor(st, c.batch))
	if err != nil {
		return EpochPoint{}, fmt.Errorf("experiment: epoch curve: %w", err)
	}
	v, err := c.e.validate(x, false, len(x)/len(c.d.Labels), nil)
	if err != nil {
		return EpochPoint{}, fmt.Errorf("experiment: epoch curve, epoch %d: %w", epoch, err)
	}
	k := st.Layers[c.top].Config.Kernels
	p := EpochPoint{Epoch: epoch, ValidationAccuracy: v.acc, Loss: v.loss, C: v.c, DistinctKernels: em.Distinct(cp.Theta.Data().([]float32), k, 0.99)}
	c.points[epoch] = p
	// The features kept: with PickEpoch, the first epoch that validates
	// best (pickEpoch's rule); else the last, which finish computes last.
	if !c.opt.PickEpoch || c.kept == nil || v.acc > c.kept.v.acc || v.acc == c.kept.v.acc && epoch < c.keptAt {
		c.kept, c.keptAt = &curveFeatures{layers: layers, train: x, v: v}, epoch
	}
	c.logf("epoch curve: layer %d after epoch %d (%d of %d kernels distinct): %s validation accuracy %.2f %% (C = %v), %.1f s\n",
		c.top+1, epoch, p.DistinctKernels, k, c.pool.Name(), 100*v.acc, v.c, time.Since(start).Seconds())
	return p, nil
}

// finish computes the points of the trained stack st that training did
// not (all of them without PickEpoch; those before a resume), in m.Epochs
// in epoch order with the LL of each epoch's kernels, draws epochs.png,
// and returns the features and validation of the epoch whose kernels the
// run keeps (the last, or with PickEpoch the one pickEpoch picks).
func (c *curve) finish(ctx context.Context, st *em.Stack, m *Metrics) (*curveFeatures, error) {
	trained := st.Layers[c.top]
	dir := rundir.LayerDir(c.opt.Out, c.top)
	for epoch := 0; epoch <= len(trained.LogLik); epoch++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p, ok := c.points[epoch]
		if !ok {
			cp, err := em.LoadCheckpoint(rundir.EpochDir(dir, epoch))
			if errors.Is(err, em.ErrNoCheckpoint) {
				c.logf("epoch curve: no kernels of epoch %d kept (a run resumed from one without the curve?); left out\n", epoch)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("experiment: epoch curve: %w", err)
			}
			if p, err = c.point(st, cp, epoch); err != nil {
				return nil, err
			}
		}
		if lls := kernelLogLik(trained.Result); epoch < len(lls) {
			p.LogLik = lls[epoch]
		}
		m.Epochs = append(m.Epochs, p)
	}
	if len(m.Epochs) == 0 {
		return nil, nil
	}
	plot := viz.EpochCurve{Name: fmt.Sprintf("layer %d, %s", c.top+1, c.pool.Name()), LogLik: kernelLogLik(trained.Result), Trained: trained.FinalLogLik != nil}
	for _, p := range m.Epochs {
		plot.Epochs = append(plot.Epochs, p.Epoch)
		plot.Accuracy = append(plot.Accuracy, p.ValidationAccuracy)
	}
	if err := viz.SaveEpochs(filepath.Join(c.opt.Out, rundir.EpochsFigure), c.d.Name+": what EM does to the features", plot); err != nil {
		return nil, err
	}
	return c.kept, nil
}

// pickEpoch keeps the top layer's kernels of the epoch of the curve that
// validates best (the first of equals: the fewest epochs), saves the stack
// with them and records the choice in m.
func pickEpoch(opt Options, st *em.Stack, m *Metrics, logf func(string, ...any)) error {
	if len(m.Epochs) == 0 {
		return nil
	}
	best := m.Epochs[0]
	for _, p := range m.Epochs {
		if p.ValidationAccuracy > best.ValidationAccuracy {
			best = p
		}
	}
	m.ChosenEpoch = &best.Epoch
	top := len(st.Layers) - 1
	trained := st.Layers[top]
	if best.Epoch == len(trained.LogLik) {
		logf("epoch curve: the kernels after the last epoch, %d, validate best\n", best.Epoch)
		return nil
	}
	cp, err := em.LoadCheckpoint(rundir.EpochDir(rundir.LayerDir(opt.Out, top), best.Epoch))
	if err != nil {
		return fmt.Errorf("experiment: pick epoch %d: %w", best.Epoch, err)
	}
	st.Layers = withTopKernels(st, cp).Layers
	if err := em.SaveStack(opt.Out, st); err != nil {
		return err
	}
	logf("epoch curve: layer %d keeps its kernels after epoch %d of %d, which validate best (%.2f %%)\n", top+1, best.Epoch, len(trained.LogLik), 100*best.ValidationAccuracy)
	return nil
}

// withTopKernels returns a copy of st whose top layer has the kernels and
// mixing weights and variances of cp; st is left as it is.
func withTopKernels(st *em.Stack, cp *em.Checkpoint) *em.Stack {
	at := *st
	at.Layers = slices.Clone(st.Layers)
	top := len(at.Layers) - 1
	res := *at.Layers[top].Result
	res.Theta, res.LogPrior, res.Variance, res.Variances = cp.Theta, cp.LogPrior, cp.Variance, cp.Variances
	at.Layers[top].Result = &res
	return &at
}

// checkEval checks the evaluation's options against the data: a validation
// split that leaves images to fit on, and choices that need one. Its
// errors wrap ErrConfig.
func checkEval(d Data, opt Options) error {
	n := len(d.Labels)
	switch {
	case opt.Validation < 0:
		return fmt.Errorf("%w: a validation split of %d images", ErrConfig, opt.Validation)
	case opt.Validation > 0 && n-opt.Validation < d.Classes:
		return fmt.Errorf("%w: a validation split of %d of the %d labelled images leaves %d to fit the classifier on (use a smaller -validation)",
			ErrConfig, opt.Validation, n, n-opt.Validation)
	case opt.Validation == 0 && opt.ChooseC:
		return fmt.Errorf("%w: C by validation needs a validation split (-validation N, N > 0)", ErrConfig)
	case opt.Validation == 0 && opt.EpochCurve:
		return fmt.Errorf("%w: the epoch curve is a validation accuracy: it needs a validation split (-validation N, N > 0)", ErrConfig)
	case opt.PickEpoch && !opt.EpochCurve:
		return fmt.Errorf("%w: picking the epoch that validates best needs the epoch curve (-epoch-curve)", ErrConfig)
	}
	return nil
}

// curvePooling is the pooling of the epoch curve: the first of Pools, or
// the top layer's of the first of LayerPools.
func curvePooling(opt Options) graph.Pooling {
	if len(opt.Pools) > 0 {
		return opt.Pools[0]
	}
	first := opt.LayerPools[0]
	return first[len(first)-1]
}
