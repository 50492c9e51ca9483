package em

import (
	"fmt"

	"calm/graph"
	"calm/mstep"

	"gorgonia.org/tensor"
)

// Checkpoint is the state of a run after a whole epoch: all that training
// needs to go on, since neither EM nor the repair draws random numbers after
// the initial θ.
type Checkpoint struct {
	Epoch        int           // epochs done
	LogLik       []float64     // one per epoch done
	EpochSeconds []float64     // one per epoch done
	Reseeded     []Reseed      // the repairs so far
	Theta        *tensor.Dense // after epoch Epoch
	LogPrior     *tensor.Dense // the log mixing weights; nil while they are uniform
	Variance     float64       // σ² after epoch Epoch, when learned (Settings.LearnVariance); else 0
	Variances    []float64     // σ_k² after epoch Epoch, when learned (Settings.KernelVariances); else nil
	Images       int           // training images: a checkpoint resumes on the same data only
	// Running is stepwise EM's running statistics (nil for batch EM): θ
	// alone does not say where stepwise EM stands.
	Running *mstep.Running
	// Config is the layer trained (its batch aside); the zero value, for a
	// checkpoint made without one, is not checked against the run.
	Config graph.Config
}

// Reseed records the kernels re-seeded after one epoch.
type Reseed struct {
	Epoch   int   `json:"epoch"`
	Kernels []int `json:"kernels"`
}

// check reports whether c can resume a run of cfg on n images that stops
// after maxEpochs, by stepwise EM or not, learning the variance or not.
func (c *Checkpoint) check(cfg graph.Config, n, maxEpochs int, stepwise, learnVariance bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("em: checkpoint: "+format, args...)
	}
	switch {
	case c.Theta == nil:
		return bad("no kernels")
	case c.Epoch < 0 || c.Epoch > maxEpochs || len(c.LogLik) != c.Epoch || len(c.EpochSeconds) != c.Epoch:
		return bad("epoch %d with %d log-likelihoods and %d timings does not fit %d epochs", c.Epoch, len(c.LogLik), len(c.EpochSeconds), maxEpochs)
	case !c.Theta.Shape().Eq(cfg.KernelShape()) || c.Theta.Dtype() != tensor.Float32:
		return bad("kernels of shape %v %v, the run has %v", c.Theta.Dtype(), c.Theta.Shape(), cfg.KernelShape())
	case c.LogPrior != nil && (!c.LogPrior.Shape().Eq(tensor.Shape{cfg.Kernels}) || c.LogPrior.Dtype() != tensor.Float32):
		return bad("mixing weights of shape %v, the run has %d kernels", c.LogPrior.Shape(), cfg.Kernels)
	case c.Images != n:
		return bad("taken on %d images, the run has %d", c.Images, n)
	case c.Config != (graph.Config{}) && c.Config != withBatch(cfg, c.Config.Batch):
		return bad("of a layer %+v, the run trains %+v", c.Config, withBatch(cfg, c.Config.Batch))
	case learnVariance != (c.Variance != 0) && c.Epoch > 0:
		return bad("with a variance of %v, the run learns it: %v", c.Variance, learnVariance)
	case cfg.KernelVariances != (c.Variances != nil) && c.Epoch > 0:
		return bad("with %d variances, the run learns one per kernel: %v", len(c.Variances), cfg.KernelVariances)
	case c.Variances != nil && len(c.Variances) != cfg.Kernels:
		return bad("%d variances, the run has %d kernels", len(c.Variances), cfg.Kernels)
	case stepwise && c.Epoch > 0 && c.Running == nil:
		return bad("taken by batch EM, the run is stepwise")
	case !stepwise && c.Running != nil:
		return bad("taken by stepwise EM, the run is batch EM")
	case c.Running != nil && (len(c.Running.Numerator) != cfg.Kernels*cfg.KernelLen() || len(c.Running.LogCounts) != cfg.Kernels || c.Running.Updates < 1):
		return bad("stepwise statistics of sizes %d and %d after %d updates, the run has %d kernels of %d values",
			len(c.Running.Numerator), len(c.Running.LogCounts), c.Running.Updates, cfg.Kernels, cfg.KernelLen())
	}
	if i := nonFinite(c.Theta.Data().([]float32)); i >= 0 {
		return bad("θ holds %v in kernel %d", c.Theta.Data().([]float32)[i], i/cfg.KernelLen())
	}
	return nil
}

// withBatch returns c with the given batch.
func withBatch(c graph.Config, batch int) graph.Config {
	c.Batch = batch
	return c
}

// Checkpointer is a Recorder that saves a checkpoint into Dir after every
// epoch (see SaveCheckpoint) and remembers the last epoch saved.
type Checkpointer struct {
	Dir   string
	Epoch int // of the last checkpoint written (or resumed from)
	prev  string
}

// NewCheckpointer returns the Checkpointer of dir, for a run that starts
// afresh (from nil) or resumes from a checkpoint saved there.
func NewCheckpointer(dir string, from *Checkpoint) *Checkpointer {
	c := &Checkpointer{Dir: dir}
	if from != nil {
		c.Epoch, c.prev = from.Epoch, thetaFile(from.Epoch)
	}
	return c
}

// Record implements Recorder.
func (c *Checkpointer) Record(e Event) error {
	if e.State == nil {
		return nil
	}
	name, err := SaveCheckpoint(c.Dir, e.State, c.prev)
	if err != nil {
		return err
	}
	c.prev, c.Epoch = name, e.State.Epoch
	return nil
}
