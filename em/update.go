package em

import (
	"calm/graph"
	"calm/mstep"

	"gorgonia.org/tensor"
)

// An update is how EM turns the M-step's statistics into the next kernels:
// batchEM once an epoch from the epoch's sums (the paper's), stepwiseEM
// after every batch from running statistics. A new way of updating is a
// type that implements it.
type update interface {
	// afterBatch takes one batch's M-step numerator and log counts (of
	// size images) and returns the kernels and log mixing weights the next
	// batch sees, or nil kernels to keep the ones it saw.
	afterBatch(numer, logCounts []float32, size, epoch int) (theta, logPrior *tensor.Dense, err error)
	// afterEpoch returns the kernels and log mixing weights after the
	// epoch from its statistics, given the ones its last batch saw.
	afterEpoch(stats *mstep.Stats, epoch int, theta, logPrior *tensor.Dense) (*tensor.Dense, *tensor.Dense, error)
	// reseeded tells the update that the repair re-seeded kernels, whose
	// values are now in theta.
	reseeded(kernels []int, theta []float32)
	// running is the state a checkpoint carries (nil for none).
	running() *mstep.Running
}

// batchEM updates θ (and π with mixing) once an epoch from its sums, so
// that the log-likelihood never decreases.
type batchEM struct {
	cfg    graph.Config
	mixing bool
}

func (batchEM) afterBatch([]float32, []float32, int, int) (*tensor.Dense, *tensor.Dense, error) {
	return nil, nil, nil
}

func (u batchEM) afterEpoch(stats *mstep.Stats, epoch int, _, _ *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	return updated(u.cfg, stats, epoch, u.mixing)
}

func (batchEM) reseeded([]int, []float32) {}
func (batchEM) running() *mstep.Running   { return nil }

// stepwiseEM updates θ after every batch from running statistics with step
// size (t+1)^−alpha (Settings.Stepwise, mstep.Running).
type stepwiseEM struct {
	cfg    graph.Config
	mixing bool
	alpha  float64
	images int // of an epoch, to which the running statistics are scaled
	stats  *mstep.Running
}

func (u *stepwiseEM) afterBatch(numer, logCounts []float32, size, epoch int) (*tensor.Dense, *tensor.Dense, error) {
	if err := u.stats.Step(numer, logCounts, size, u.alpha); err != nil {
		return nil, nil, err
	}
	return updated(u.cfg, u.stats.Stats(u.images), epoch, u.mixing)
}

func (u *stepwiseEM) afterEpoch(_ *mstep.Stats, _ int, theta, logPrior *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	return theta, logPrior, nil // updated batch by batch
}

func (u *stepwiseEM) reseeded(kernels []int, theta []float32) {
	d := u.cfg.KernelLen()
	for _, k := range kernels {
		u.stats.Reseed(k, theta[k*d:(k+1)*d], u.images)
	}
}

func (u *stepwiseEM) running() *mstep.Running { return u.stats }

// updated returns the M-step's θ and log mixing weights (nil unless
// mixing) from the statistics s, naming the epoch in a
// *mstep.NonFiniteError.
func updated(cfg graph.Config, s *mstep.Stats, epoch int, mixing bool) (theta, logPrior *tensor.Dense, err error) {
	theta, logPrior, err = mstep.Update(cfg, s)
	if err != nil {
		return nil, nil, inEpoch(err, epoch)
	}
	if !mixing {
		logPrior = nil
	}
	return theta, logPrior, nil
}
