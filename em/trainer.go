package em

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"calm/dataset"
	"calm/estep"
	"calm/graph"
	"calm/mstep"

	"gorgonia.org/tensor"
)

// A trainer is one layer's EM under way: the compiled E-step and M-step
// graphs, the settings, the layer as it stands (now, which the next E-step
// runs under), the history so far (res), and the update that turns
// statistics into kernels. Train drives it epoch by epoch.
type trainer struct {
	src     dataset.Source
	n       int // images
	batches int // per epoch
	s       Settings
	cfg     graph.Config
	e       *estep.Graph
	m       *mstep.Graph
	fused   *estep.Fused // the E-step and the M-step's numerator in one graph, when the op set fuses them
	now     Layer
	res     *Result
	update  update
	first   int           // the first epoch to run
	seeding time.Duration // what drawing the initial kernels took
	start   time.Time     // of the epoch under way
}

// newTrainer checks the settings, draws or resumes the initial layer and
// compiles the graphs.
func newTrainer(src dataset.Source, s Settings) (*trainer, error) {
	n, c, h, w := src.Shape()
	s, cfg, err := s.Normalize(n, c, h, w)
	if err != nil {
		return nil, err
	}
	t := &trainer{src: src, n: n, batches: (n + cfg.Batch - 1) / cfg.Batch, s: s, cfg: cfg, first: 1,
		res: &Result{Config: cfg, Settings: s}}
	t.now.Pad = cfg.Pad
	var running *mstep.Running
	if r := s.Resume; r != nil {
		t.now = Layer{Theta: r.Theta, LogPrior: r.LogPrior, Pad: cfg.Pad, Variance: r.Variance, Variances: slices.Clone(r.Variances)}
		t.first = r.Epoch + 1
		if r.Running != nil {
			running = r.Running.Clone()
		}
		t.res.LogLik = slices.Clone(r.LogLik)
		t.res.EpochSeconds = slices.Clone(r.EpochSeconds)
		t.res.Reseeded = slices.Clone(r.Reseeded)
		t.res.Layer = t.now
		if converged(t.res, s.Tol) {
			t.res.Status = Converged
		}
	} else {
		start := time.Now()
		if err := t.seed(); err != nil {
			return nil, err
		}
		t.seeding = time.Since(start)
	}
	t.update = batchEM{cfg: cfg, mixing: s.Mixing}
	if s.Stepwise > 0 {
		if running == nil {
			running = mstep.NewRunning(cfg.Kernels, cfg.KernelLen())
		}
		t.update = &stepwiseEM{cfg: cfg, mixing: s.Mixing, alpha: s.Stepwise, images: n, stats: running}
	}
	if t.e, err = estep.New(cfg, s.Ops); err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	if t.m, err = mstep.New(cfg, s.Ops); err != nil {
		t.e.Close()
		return nil, fmt.Errorf("em: %w", err)
	}
	if t.fused, err = estep.NewFused(cfg, s.Ops); err != nil && !errors.Is(err, graph.ErrNotFused) {
		t.close()
		return nil, fmt.Errorf("em: %w", err)
	}
	return t, nil
}

// seed draws or takes the initial kernels and sets the variances and
// mixing weights EM starts from: the paper's σ² = 1, and uniform weights
// (normalised, so that every epoch's LL is the mixture's and EM's
// guarantee holds from the first).
func (t *trainer) seed() error {
	theta, err := initialTheta(t.src, t.s, t.cfg)
	if err != nil {
		return err
	}
	t.now.Theta = theta
	if t.s.LearnVariance {
		t.now.Variance = 1
	}
	if t.s.KernelVariances {
		t.now.Variances = make([]float64, t.cfg.Kernels)
		for k := range t.now.Variances {
			t.now.Variances[k] = 1
		}
	}
	if t.s.Mixing {
		lp := make([]float32, t.cfg.Kernels)
		for k := range lp {
			lp[k] = float32(-math.Log(float64(t.cfg.Kernels)))
		}
		t.now.LogPrior = tensor.New(tensor.WithShape(t.cfg.Kernels), tensor.WithBacking(lp))
	}
	return nil
}

func (t *trainer) close() {
	t.e.Close()
	t.m.Close()
	if t.fused != nil {
		t.fused.Close()
	}
}

// record passes e to the recorder, if any.
func (t *trainer) record(e Event) error {
	if t.s.Recorder == nil {
		return nil
	}
	return t.s.Recorder.Record(e)
}

// seeded tells the recorder of the start of a run that does not resume.
func (t *trainer) seeded() error {
	if t.s.Resume != nil {
		return nil
	}
	return t.record(Event{Batches: t.batches, Elapsed: t.seeding, Seeded: &Checkpoint{Theta: t.now.Theta, LogPrior: t.now.LogPrior, Images: t.n, Config: withBatch(t.cfg, 0)}})
}

// pass is one pass over every batch of the source: it runs the E-step
// under t.now at inverse temperature beta (read again for every batch, as
// stepwise EM moves it), adds to each batch's LL the patch-energy term of
// a learned variance (the energy summed into energy), calls each with the
// batch's first image, images, E-step and, when the graphs are fused, the
// M-step's numerator (else nil), and tells the recorder. final marks the
// pass after the last epoch, which measures the LL of the trained kernels
// (with the fused graph's log marginal alone when there is one: the
// E-step graph writes the posterior out).
func (t *trainer) pass(epoch int, beta float32, final bool, energy *mstep.Stats, each func(first int, x *tensor.Dense, er *estep.Result, numer []float32) error) error {
	start := time.Now()
	return forEachBatch(t.src, t.cfg, t.n, func(first int, x *tensor.Dense) error {
		b, size := first/t.cfg.Batch+1, x.Shape()[0]
		if err := t.s.Context.Err(); err != nil {
			return fmt.Errorf("em: stopped in epoch %d: %w", epoch, context.Cause(t.s.Context))
		}
		xv := x.Data().([]float32)
		if i := nonFinite(xv); i >= 0 {
			return fmt.Errorf("em: image %d holds %v: the data must be finite", first+i/t.cfg.ImageLen(), xv[i])
		}
		var er *estep.Result
		var numer []float32
		var err error
		fusedBeta := beta * estep.InverseTemperature(t.now.Variance)
		switch {
		case t.fused != nil && final:
			er, err = t.fused.LogLikTempered(x, t.now.Theta, t.now.LogPrior, fusedBeta)
		case t.fused != nil:
			var fr *estep.FusedResult
			if fr, err = t.fused.RunTempered(x, t.now.Theta, t.now.LogPrior, fusedBeta); err == nil {
				er, numer = &fr.Result, fr.Numer
			}
		default:
			er, err = t.now.eStep(t.e, x, beta)
		}
		if err != nil {
			return fmt.Errorf("em: epoch %d, batch %d: %w", epoch, b, err)
		}
		if math.IsNaN(er.LogLik) || math.IsInf(er.LogLik, 0) {
			return fmt.Errorf("em: epoch %d, batch %d: log-likelihood is %v (NaN or Inf in the data or θ)", epoch, b, er.LogLik)
		}
		if t.s.LearnVariance {
			er.LogLik += varianceLogLik(t.cfg, energy.AddPatchEnergy(t.cfg, xv), size, t.now.Variance)
		}
		if err := each(first, x, er, numer); err != nil {
			return err
		}
		return t.record(Event{Final: final, Epoch: epoch, Batch: b, Batches: t.batches, Images: first + size, Elapsed: time.Since(start)})
	})
}

// expectations runs an epoch's E-step and M-step numerator on every batch
// and returns their statistics, summed in float64, and the images the
// model explains worst (for the repair).
func (t *trainer) expectations(epoch int) (*mstep.Stats, *worstImages, error) {
	t.start = time.Now()
	stats := mstep.NewStats(t.cfg)
	worst := &worstImages{cap: t.cfg.Kernels}
	err := t.pass(epoch, t.s.beta(epoch), false, stats, func(first int, x *tensor.Dense, er *estep.Result, nv []float32) error {
		size := x.Shape()[0]
		if nv == nil {
			numer, kernelEnergy, err := t.m.RunWithEnergy(x, er.Posterior)
			if err != nil {
				return fmt.Errorf("em: epoch %d, batch %d: %w", epoch, first/t.cfg.Batch+1, err)
			}
			if t.s.KernelVariances {
				if err := stats.AddKernelEnergy(kernelEnergy); err != nil {
					return fmt.Errorf("em: %w", err)
				}
			}
			nv = numer.Data().([]float32)
		}
		if err := stats.Add(nv, er.LogCounts, er.LogLik, size); err != nil {
			return fmt.Errorf("em: %w", err)
		}
		theta, logPrior, err := t.update.afterBatch(nv, er.LogCounts, size, epoch)
		if err != nil {
			return fmt.Errorf("em: %w", err)
		}
		if theta != nil {
			t.now.Theta, t.now.LogPrior = theta, logPrior
		}
		if t.s.Repair.On() {
			for i, l := range er.LogMarginal {
				worst.add(first+i, float64(l))
			}
		}
		return nil
	})
	return stats, worst, err
}

// maximise ends an epoch: the update's kernels, the variances fitted to
// them, the repair (but after the last epoch), the history, the recorder,
// and whether EM has converged.
func (t *trainer) maximise(epoch int, stats *mstep.Stats, worst *worstImages) error {
	theta, logPrior, err := t.update.afterEpoch(stats, epoch, t.now.Theta, t.now.LogPrior)
	if err != nil {
		return err
	}
	next := Layer{Theta: theta, LogPrior: logPrior, Pad: t.cfg.Pad, Variance: t.now.Variance, Variances: t.now.Variances}
	if err := t.fitVariances(&next, stats, epoch); err != nil {
		return err
	}
	var reseeded []int
	if t.s.Repair.On() && epoch < t.s.epochs() {
		if reseeded, err = t.repair(next, stats, worst); err != nil {
			return err
		}
		if len(reseeded) > 0 {
			t.res.Reseeded = append(t.res.Reseeded, Reseed{Epoch: epoch, Kernels: reseeded})
		}
	}
	t.now = next
	t.res.Layer = next
	t.res.LogLik = append(t.res.LogLik, stats.LogLik)
	t.res.EpochSeconds = append(t.res.EpochSeconds, time.Since(t.start).Seconds())
	state := &Checkpoint{Epoch: epoch, LogLik: t.res.LogLik, EpochSeconds: t.res.EpochSeconds, Reseeded: t.res.Reseeded,
		Theta: next.Theta, LogPrior: next.LogPrior, Variance: next.Variance, Variances: next.Variances, Images: t.n,
		Config: withBatch(t.cfg, 0), Running: t.update.running()}
	err = t.record(Event{Epoch: epoch, Batches: t.batches, Images: t.n, Elapsed: time.Since(t.start), LogLik: stats.LogLik,
		Theta: next.Theta, Reseeded: reseeded, State: state})
	switch {
	case errors.Is(err, Stop):
		t.res.Status = Stopped
	case err != nil:
		return err
	case converged(t.res, t.s.Tol):
		t.res.Status = Converged
	}
	return nil
}

// fitVariances sets the variance (Settings.LearnVariance) or the variances
// (Settings.KernelVariances) of l, the kernels after the epoch, from the
// epoch's statistics.
func (t *trainer) fitVariances(l *Layer, stats *mstep.Stats, epoch int) error {
	var err error
	if t.s.LearnVariance {
		if l.Variance, err = mstep.Variance(t.cfg, stats, l.Theta); err != nil {
			return inEpoch(err, epoch)
		}
	}
	if t.s.KernelVariances {
		if l.Variances, err = mstep.KernelVariances(t.cfg, stats, l.Theta); err != nil {
			return inEpoch(err, epoch)
		}
	}
	return nil
}

// repair re-seeds, in l's kernels and mixing weights, the kernels the
// epoch's counts say collapsed (Settings.Repair), from the images the
// model explained worst, and returns them.
func (t *trainer) repair(l Layer, stats *mstep.Stats, worst *worstImages) ([]int, error) {
	counts := make([]float64, t.cfg.Kernels)
	for k, b := range stats.LogCounts {
		counts[k] = math.Exp(b)
	}
	th := l.Theta.Data().([]float32)
	bad := collapsed(th, counts, t.s.Repair)
	var lp []float32
	if l.LogPrior != nil {
		lp = l.LogPrior.Data().([]float32)
	}
	if err := reseed(th, lp, bad, worst.index, t.src, t.cfg); err != nil {
		return nil, err
	}
	t.update.reseeded(bad, th)
	return bad, nil
}

// result returns the trained layer and its history, with the LL of the
// trained kernels measured by one more E-step pass (when an epoch ran).
func (t *trainer) result() (*Result, error) {
	t.res.Layer = t.now
	if len(t.res.LogLik) == 0 {
		return t.res, nil
	}
	epoch := len(t.res.LogLik) + 1
	start := time.Now()
	var sum float64
	// At β = 1: annealing ends there.
	err := t.pass(epoch, 1, true, mstep.NewStats(t.cfg), func(_ int, _ *tensor.Dense, er *estep.Result, _ []float32) error {
		sum += er.LogLik
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("em: the LL of the trained kernels: %w", err)
	}
	if err := t.record(Event{Final: true, Epoch: epoch, Batches: t.batches, Images: t.n, Elapsed: time.Since(start), LogLik: sum}); err != nil {
		return nil, err
	}
	t.res.FinalLogLik = &sum
	return t.res, nil
}
