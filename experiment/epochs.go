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

// epochCurve evaluates the main pooling of the top layer under its kernels
// after each epoch (metrics' Epochs, epochs.png): features of the labelled
// images, the classifier fitted before the validation images and scored on
// them, C by validation with ChooseC. The test set is not looked at. It
// returns the features and validation of the epoch whose kernels the run
// keeps (the last, or with PickEpoch the one pickEpoch picks), for the
// evaluation.
func epochCurve(ctx context.Context, d Data, opt Options, st *em.Stack, ops graph.Ops, batch int, m *Metrics, logf func(string, ...any)) (*curveFeatures, error) {
	var kept *curveFeatures
	var keptAcc float64
	e := newEvaluator(d, opt, logf)
	top := len(st.Layers) - 1
	trained := st.Layers[top]
	dir := rundir.LayerDir(opt.Out, top)
	pool := curvePooling(opt)
	batch = featureBatchFor(st, batch)
	for epoch := 0; epoch <= len(trained.LogLik); epoch++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		start := time.Now()
		cp, err := em.LoadCheckpoint(rundir.EpochDir(dir, epoch))
		if errors.Is(err, em.ErrNoCheckpoint) {
			logf("epoch curve: no kernels of epoch %d kept (a run resumed from one without the curve?); left out\n", epoch)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("experiment: epoch curve: %w", err)
		}
		layers := estep.Pooled(pool, top)
		x, err := em.StackFeatures(watched(d.Labelled, opt, fmt.Sprintf("epoch curve: features (%s) after epoch %d", pool.Name(), epoch)), withTopKernels(st, cp), layers, ops, batch)
		if err != nil {
			return nil, fmt.Errorf("experiment: epoch curve: %w", err)
		}
		v, err := e.validate(x, len(x)/len(d.Labels))
		if err != nil {
			return nil, fmt.Errorf("experiment: epoch curve, epoch %d: %w", epoch, err)
		}
		// The kernels kept: the last epoch's, or the first that validates
		// best (pickEpoch's rule).
		if last := epoch == len(trained.LogLik); opt.PickEpoch && (kept == nil || v.acc > keptAcc) || !opt.PickEpoch && last {
			kept, keptAcc = &curveFeatures{layers: layers, train: x, v: v}, v.acc
		}
		c, acc := v.c, v.acc
		k := trained.Config.Kernels
		p := EpochPoint{Epoch: epoch, ValidationAccuracy: acc, Loss: v.loss, C: c, DistinctKernels: em.Distinct(cp.Theta.Data().([]float32), k, 0.99)}
		if lls := kernelLogLik(trained.Result); epoch < len(lls) {
			p.LogLik = lls[epoch]
		}
		m.Epochs = append(m.Epochs, p)
		logf("epoch curve: layer %d after epoch %d (%d of %d kernels distinct): %s validation accuracy %.2f %% (C = %v), %.1f s\n",
			top+1, epoch, p.DistinctKernels, k, pool.Name(), 100*acc, c, time.Since(start).Seconds())
	}
	if len(m.Epochs) == 0 {
		return nil, nil
	}
	curve := viz.EpochCurve{Name: fmt.Sprintf("layer %d, %s", top+1, pool.Name()), LogLik: kernelLogLik(trained.Result), Trained: trained.FinalLogLik != nil}
	for _, p := range m.Epochs {
		curve.Epochs = append(curve.Epochs, p.Epoch)
		curve.Accuracy = append(curve.Accuracy, p.ValidationAccuracy)
	}
	if err := viz.SaveEpochs(filepath.Join(opt.Out, rundir.EpochsFigure), d.Name+": what EM does to the features", curve); err != nil {
		return nil, err
	}
	return kept, nil
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
