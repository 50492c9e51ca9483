package em

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

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
	Elapsed time.Duration // since the epoch started
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
// returned by Train.
type Recorder interface {
	Record(Event) error
}

// Recorders calls each of its recorders in turn, stopping at an error.
type Recorders []Recorder

// Record implements Recorder.
func (rs Recorders) Record(e Event) error {
	for _, r := range rs {
		if err := r.Record(e); err != nil {
			return err
		}
	}
	return nil
}

// Status says why training stopped.
type Status int

const (
	EpochLimit Status = iota // MaxEpochs epochs ran
	Converged                // the relative LL gain fell below Tol
)

func (s Status) String() string {
	if s == Converged {
		return "converged"
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
// way the LL is no longer bound to rise.
func Train(src Source, s Settings) (*Result, error) {
	n, c, h, w := src.Shape()
	s, cfg, err := s.Normalize(n, c, h, w)
	if err != nil {
		return nil, err
	}
	res := &Result{Config: cfg, Settings: s}
	res.Pad = cfg.Pad
	var theta, logPrior *tensor.Dense
	var running *mstep.Running // stepwise EM's statistics; nil for batch EM
	first := 1
	if r := s.Resume; r != nil {
		theta, logPrior, first = r.Theta, r.LogPrior, r.Epoch+1
		res.Variance, res.Variances = r.Variance, slices.Clone(r.Variances)
		if r.Running != nil {
			running = r.Running.Clone()
		}
		res.LogLik = slices.Clone(r.LogLik)
		res.EpochSeconds = slices.Clone(r.EpochSeconds)
		res.Reseeded = slices.Clone(r.Reseeded)
		res.Theta, res.LogPrior = theta, logPrior
		if converged(res, s.Tol) {
			res.Status = Converged
			first = s.epochs() + 1 // no epoch left to run
		}
	} else if theta, err = initialTheta(src, s, cfg); err != nil {
		return nil, err
	} else {
		if s.LearnVariance {
			res.Variance = 1 // the paper's, from which EM learns it
		}
		if s.KernelVariances {
			res.Variances = make([]float64, cfg.Kernels)
			for k := range res.Variances {
				res.Variances[k] = 1
			}
		}
		if s.Mixing {
			// Uniform weights, normalised, so that the LL of every epoch is
			// the mixture's and EM's guarantee holds from the first.
			lp := make([]float32, cfg.Kernels)
			for k := range lp {
				lp[k] = float32(-math.Log(float64(cfg.Kernels)))
			}
			logPrior = tensor.New(tensor.WithShape(cfg.Kernels), tensor.WithBacking(lp))
		}
	}
	e, err := estep.New(cfg, s.Ops)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	defer e.Close()
	m, err := mstep.New(cfg, s.Ops)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	defer m.Close()
	if s.Stepwise > 0 && running == nil {
		running = mstep.NewRunning(cfg.Kernels, cfg.KernelLen())
	}
	images := &batchReader{src: src, cfg: cfg}
	batches := (n + cfg.Batch - 1) / cfg.Batch
	if s.Recorder != nil && s.Resume == nil {
		ev := Event{Batches: batches, Seeded: &Checkpoint{Theta: theta, LogPrior: logPrior, Images: n, Config: withBatch(cfg, 0)}}
		if err := s.Recorder.Record(ev); err != nil {
			return nil, err
		}
	}
	for epoch := first; epoch <= s.epochs(); epoch++ {
		start := time.Now()
		stats := mstep.NewStats(cfg)
		worst := &worstImages{cap: cfg.Kernels}
		for b := 0; b < batches; b++ {
			if err := s.Context.Err(); err != nil {
				return nil, fmt.Errorf("em: stopped in epoch %d: %w", epoch, context.Cause(s.Context))
			}
			lo := b * cfg.Batch
			size := min(cfg.Batch, n-lo)
			x, err := images.read(lo, size)
			if err != nil {
				return nil, fmt.Errorf("em: epoch %d: %w", epoch, err)
			}
			xv := x.Data().([]float32)
			if i := nonFinite(xv); i >= 0 {
				return nil, fmt.Errorf("em: image %d holds %v: the data must be finite", lo+i/cfg.ImageLen(), xv[i])
			}
			now := Layer{Theta: theta, LogPrior: logPrior, Variance: res.Variance, Variances: res.Variances}
			er, err := now.eStep(e, x, s.beta(epoch))
			if err != nil {
				return nil, fmt.Errorf("em: epoch %d, batch %d: %w", epoch, b+1, err)
			}
			if math.IsNaN(er.LogLik) || math.IsInf(er.LogLik, 0) {
				return nil, fmt.Errorf("em: epoch %d, batch %d: log-likelihood is %v (NaN or Inf in the data or θ)", epoch, b+1, er.LogLik)
			}
			if s.LearnVariance {
				er.LogLik += varianceLogLik(cfg, stats.AddPatchEnergy(cfg, xv), size, res.Variance)
			}
			numer, kernelEnergy, err := m.RunWithEnergy(x, er.Posterior)
			if err != nil {
				return nil, fmt.Errorf("em: epoch %d, batch %d: %w", epoch, b+1, err)
			}
			if s.KernelVariances {
				if err := stats.AddKernelEnergy(kernelEnergy); err != nil {
					return nil, fmt.Errorf("em: %w", err)
				}
			}
			if err := stats.Add(numer.Data().([]float32), er.LogCounts, er.LogLik, size); err != nil {
				return nil, fmt.Errorf("em: %w", err)
			}
			if running != nil {
				if err := running.Step(numer.Data().([]float32), er.LogCounts, size, s.Stepwise); err != nil {
					return nil, fmt.Errorf("em: %w", err)
				}
				if theta, logPrior, err = update(cfg, running.Stats(n), epoch, s.Mixing); err != nil {
					return nil, err
				}
			}
			if s.Repair.On() {
				for i, l := range er.LogMarginal {
					worst.add(lo+i, float64(l))
				}
			}
			if s.Recorder != nil {
				ev := Event{Epoch: epoch, Batch: b + 1, Batches: batches, Images: lo + size, Elapsed: time.Since(start)}
				if err := s.Recorder.Record(ev); err != nil {
					return nil, err
				}
			}
		}
		newTheta, newPrior := theta, logPrior // stepwise EM has updated them
		if running == nil {
			if newTheta, newPrior, err = update(cfg, stats, epoch, s.Mixing); err != nil {
				return nil, err
			}
		}
		variance, variances := res.Variance, res.Variances
		if s.LearnVariance {
			if variance, err = mstep.Variance(cfg, stats, newTheta); err != nil {
				return nil, inEpoch(err, epoch)
			}
		}
		if s.KernelVariances {
			if variances, err = mstep.KernelVariances(cfg, stats, newTheta); err != nil {
				return nil, inEpoch(err, epoch)
			}
		}
		var reseeded []int
		if s.Repair.On() && epoch < s.epochs() {
			counts := make([]float64, cfg.Kernels)
			for k, b := range stats.LogCounts {
				counts[k] = math.Exp(b)
			}
			th := newTheta.Data().([]float32)
			reseeded = collapsed(th, counts, s.Repair)
			var lp []float32
			if newPrior != nil {
				lp = newPrior.Data().([]float32)
			}
			if err := reseed(th, lp, reseeded, worst.index, src, cfg); err != nil {
				return nil, err
			}
			if running != nil {
				d := cfg.KernelLen()
				for _, k := range reseeded {
					running.Reseed(k, th[k*d:(k+1)*d], n)
				}
			}
			if len(reseeded) > 0 {
				res.Reseeded = append(res.Reseeded, Reseed{Epoch: epoch, Kernels: reseeded})
			}
		}
		theta, logPrior = newTheta, newPrior
		res.Theta, res.LogPrior, res.Variance, res.Variances = theta, logPrior, variance, variances
		res.LogLik = append(res.LogLik, stats.LogLik)
		res.EpochSeconds = append(res.EpochSeconds, time.Since(start).Seconds())
		if s.Recorder != nil {
			ev := Event{Epoch: epoch, Batches: batches, Images: n, Elapsed: time.Since(start), LogLik: stats.LogLik,
				Theta: theta, Reseeded: reseeded,
				State: &Checkpoint{Epoch: epoch, LogLik: res.LogLik, EpochSeconds: res.EpochSeconds, Reseeded: res.Reseeded,
					Theta: theta, LogPrior: logPrior, Variance: variance, Variances: variances, Images: n, Config: withBatch(cfg, 0), Running: running}}
			if err := s.Recorder.Record(ev); err != nil {
				return nil, err
			}
		}
		if converged(res, s.Tol) {
			res.Status = Converged
			break
		}
	}
	if res.Theta == nil { // no epoch ran
		res.Theta, res.LogPrior = theta, logPrior
	}
	if len(res.LogLik) > 0 {
		ll, err := finalLogLik(res, s, e, src, n)
		if err != nil {
			return nil, err
		}
		res.FinalLogLik = &ll
	}
	return res, nil
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

// finalLogLik returns Σ_n ℓ_n of the n images of src under the trained
// layer of res: the E-step of every batch once more, summed as an epoch
// sums them, at β = 1 (annealing ends there).
func finalLogLik(res *Result, s Settings, e *estep.Graph, src Source, n int) (float64, error) {
	cfg := res.Config
	batches := (n + cfg.Batch - 1) / cfg.Batch
	epoch := len(res.LogLik) + 1
	energy := mstep.NewStats(cfg) // the patch energy a learned variance needs
	start := time.Now()
	var sum float64
	err := forEachBatch(src, cfg, n, func(first int, x *tensor.Dense) error {
		if err := s.Context.Err(); err != nil {
			return fmt.Errorf("stopped: %w", context.Cause(s.Context))
		}
		b, size := first/cfg.Batch+1, x.Shape()[0]
		er, err := res.Layer.eStep(e, x, 1)
		if err != nil {
			return fmt.Errorf("batch %d: %w", b, err)
		}
		ll := er.LogLik
		if s.LearnVariance {
			ll += varianceLogLik(cfg, energy.AddPatchEnergy(cfg, x.Data().([]float32)), size, res.Variance)
		}
		if math.IsNaN(ll) || math.IsInf(ll, 0) {
			return fmt.Errorf("batch %d: %v (NaN or Inf in the data or θ)", b, ll)
		}
		sum += ll
		if s.Recorder == nil {
			return nil
		}
		return s.Recorder.Record(Event{Final: true, Epoch: epoch, Batch: b, Batches: batches, Images: first + size, Elapsed: time.Since(start)})
	})
	if err != nil {
		return 0, fmt.Errorf("em: the LL of the trained kernels: %w", err)
	}
	if s.Recorder != nil {
		ev := Event{Final: true, Epoch: epoch, Batches: batches, Images: n, Elapsed: time.Since(start), LogLik: sum}
		if err := s.Recorder.Record(ev); err != nil {
			return 0, err
		}
	}
	return sum, nil
}

// update returns the M-step's θ and log mixing weights (nil unless mixing)
// from the statistics s, naming the epoch in a *mstep.NonFiniteError.
func update(cfg graph.Config, s *mstep.Stats, epoch int, mixing bool) (theta, logPrior *tensor.Dense, err error) {
	theta, logPrior, err = mstep.Update(cfg, s)
	if err != nil {
		return nil, nil, inEpoch(err, epoch)
	}
	if !mixing {
		logPrior = nil
	}
	return theta, logPrior, nil
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
func Features(src Source, l Layer, p graph.Pooling, ops graph.Ops, batch int) ([]float32, error) {
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
