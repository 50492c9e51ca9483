package em

import (
	"errors"
	"fmt"
	"math"
	"time"

	"calm/dataset"
	"calm/estep"
	"calm/graph"
	"calm/mstep"

	"gorgonia.org/tensor"
)

// Event is what the loop reports to a Recorder: the start of a run (Epoch
// 0, Seeded set), each batch, each epoch's end (Batch 0, State set), and
// after the last epoch the batches and the end of the pass that measures
// the trained kernels' LL (Final set).
type Event struct {
	Epoch   int           // 1-based; 0 for the start
	Seeded  *Checkpoint   // at the start of a run that does not resume: the initial θ and log mixing weights (do not modify)
	Batch   int           // batches done in this epoch; 0 for an epoch's end
	Batches int           // batches per epoch
	Images  int           // images done in this epoch
	Elapsed time.Duration // since the epoch started; at the start, what seeding θ took
	LogLik  float64       // at an epoch's end: Σ_n ℓ_n under the θ before its update
	Theta   *tensor.Dense // at an epoch's end: the updated kernels (do not modify)

	// Reseeded lists, at an epoch's end, the kernels the repair re-seeded
	// after it (the next epoch's LL may dip below this one's).
	Reseeded []int

	// State is, at an epoch's end, the checkpoint to resume from. It shares
	// Theta, the running statistics and the history with the loop: copy
	// what you keep past Record.
	State *Checkpoint

	// Final marks the events of the E-step pass after the last epoch that
	// measures the LL of the trained kernels (Result.FinalLogLik): Epoch
	// is the one after the last (the pass is its E-step, without its
	// M-step), Batch counts the pass's batches, and its end (Batch 0)
	// carries LogLik and nothing else.
	Final bool
}

// Recorder observes training. An error from Record stops training and is
// returned by Train, but Stop, which ends it well.
type Recorder interface {
	Record(Event) error
}

// Stop is what a Recorder returns (or wraps) from the event that ends an
// epoch to end training there: the epoch is kept as if it were the last,
// the LL of its kernels is measured, and the Result's Status is Stopped.
// From any other event it is an error like another.
var Stop = errors.New("em: stopped by a recorder")

// Recorders calls each of its recorders in turn, stopping at an error; a
// Stop from one still lets the others see the event.
type Recorders []Recorder

// Record implements Recorder.
func (rs Recorders) Record(e Event) error {
	var stop error
	for _, r := range rs {
		switch err := r.Record(e); {
		case errors.Is(err, Stop):
			stop = err
		case err != nil:
			return err
		}
	}
	return stop
}

// Status says why training stopped.
type Status int

const (
	EpochLimit Status = iota // MaxEpochs epochs ran
	Converged                // the relative LL gain fell below Tol
	Stopped                  // a Recorder returned Stop
)

func (s Status) String() string {
	switch s {
	case Converged:
		return "converged"
	case Stopped:
		return "stopped"
	}
	return "epoch limit"
}

// A Layer is a trained CALM layer: what its features need.
type Layer struct {
	Theta    *tensor.Dense // the kernels (K,C,w,w)
	LogPrior *tensor.Dense // the log mixing weights (K); nil for uniform weights
	Pad      int
	// Variance is σ², the variance of the kernels' Gaussians, learned with
	// Settings.LearnVariance; 0 is read as 1, the paper's.
	Variance float64
	// Variances are σ_k², one per kernel, learned with
	// Settings.KernelVariances (graph.Config.KernelVariances); else nil.
	Variances []float64
}

// eStep runs the E-step e on the batch x under the layer (its kernels, log
// mixing weights and variances), its log joint's Gaussian part tempered by
// anneal (1 but under Settings.Anneal).
func (l Layer) eStep(e *estep.Graph, x *tensor.Dense, anneal float32) (*estep.Result, error) {
	if l.Variances == nil {
		return e.RunTempered(x, l.Theta, l.LogPrior, anneal*estep.InverseTemperature(l.Variance))
	}
	if anneal != 1 {
		return nil, fmt.Errorf("em: annealing kernels of a variance each")
	}
	precision := make([]float32, len(l.Variances))
	estep.InverseTemperatures(precision, l.Variances)
	return e.RunPrecise(x, l.Theta, l.LogPrior, precision)
}

// Result is the outcome of Train.
type Result struct {
	Layer
	LogLik []float64 // LogLik[e] = Σ_n ℓ_n in epoch e+1, under the θ before its update
	// FinalLogLik is Σ_n ℓ_n under the θ of the last epoch, measured by
	// one more E-step pass: the end of the curve LogLik starts, so that
	// one epoch shows what it gained. Nil when no epoch ran.
	FinalLogLik  *float64
	EpochSeconds []float64
	Reseeded     []Reseed // the repairs, by epoch
	Status       Status
	Config       graph.Config // the layer trained
	Settings     Settings     // the settings, defaults filled in
}

// Train runs batch EM on the images of src: it draws or takes the initial
// θ, then in each epoch runs the E-step and the M-step numerator on every
// batch, sums their statistics in float64 and updates θ (and, with Mixing,
// π) once, so that the log-likelihood never decreases. With Repair on, it
// then re-seeds collapsed kernels (not after the last epoch); the LL of the
// epoch that follows a repair may dip, and such an epoch never counts as
// converged. With Settings.Stepwise it updates θ after every batch instead
// (stepwise EM), and with Settings.Anneal its E-step is tempered; either
// way the LL is no longer bound to rise. After the last epoch one more
// E-step pass measures the LL of the trained kernels.
func Train(src dataset.Source, s Settings) (*Result, error) {
	t, err := newTrainer(src, s)
	if err != nil {
		return nil, err
	}
	defer t.close()
	if err := t.seeded(); err != nil {
		return nil, err
	}
	for epoch := t.first; epoch <= t.s.epochs() && t.res.Status == EpochLimit; epoch++ {
		stats, worst, err := t.expectations(epoch)
		if err != nil {
			return nil, err
		}
		if err := t.maximise(epoch, stats, worst); err != nil {
			return nil, err
		}
	}
	return t.result()
}

// varianceLogLik is what the LL of a batch of size images with patch
// energy Σ‖x_u‖² gains over the paper's (σ² = 1) for kernels of variance
// σ² = 1/β: the terms the paper's LL leaves out, −½(β−1)‖x_u‖² and
// (D/2)·log β for every patch.
func varianceLogLik(cfg graph.Config, energy float64, size int, variance float64) float64 {
	uh, uw := cfg.Positions()
	patches := float64(size * uh * uw)
	beta := float64(estep.InverseTemperature(variance))
	return -(beta-1)*energy/2 + patches*float64(cfg.KernelLen())/2*math.Log(beta)
}

// inEpoch wraps an error of the M-step, naming the epoch in a
// *mstep.NonFiniteError.
func inEpoch(err error, epoch int) error {
	var nf *mstep.NonFiniteError
	if errors.As(err, &nf) {
		nf.Epoch = epoch
	}
	return fmt.Errorf("em: %w", err)
}

// nonFinite returns the index of the first NaN or Inf in v, or −1.
func nonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN − NaN and Inf − Inf are NaN
			return i
		}
	}
	return -1
}

// converged reports whether the last relative LL gain of res fell below
// tol > 0; the gain across a repair does not count.
func converged(res *Result, tol float64) bool {
	k := len(res.LogLik)
	if tol <= 0 || k < 2 {
		return false
	}
	if len(res.Reseeded) > 0 && res.Reseeded[len(res.Reseeded)-1].Epoch == k-1 {
		return false
	}
	prev := res.LogLik[k-2]
	return (res.LogLik[k-1]-prev)/math.Abs(prev) < tol
}

// Features returns the features of every image of src under the layer l,
// pooled by p (N rows of p.Features(K) values, row-major), computed batch
// images at a time with the op set ops (nil: the default): the features
// of a stack of one layer (StackFeatures).
func Features(src dataset.Source, l Layer, p graph.Pooling, ops graph.Ops, batch int) ([]float32, error) {
	n, c, h, w := src.Shape()
	ts := l.Theta.Shape()
	if ts.Dims() != 4 || ts[1] != c || ts[2] != ts[3] {
		return nil, fmt.Errorf("em: features: θ of shape %v for images with %d channels", ts, c)
	}
	cfg := graph.Config{Kernels: ts[0], Width: ts[2], Pad: l.Pad, Channels: c, Rows: h, Cols: w, Batch: min(max(batch, 1), n)}
	if l.Variances != nil {
		cfg.Model, cfg.KernelVariances = graph.PatchModel, true
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("em: features: %w", err)
	}
	return StackFeatures(src, &Stack{Layers: []Trained{{Result: &Result{Layer: l, Config: cfg}}}}, estep.Pooled(p, 0), ops, batch)
}
