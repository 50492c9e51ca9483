package estep

import (
	"errors"
	"fmt"

	"calm/graph"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Fused is the compiled E-step of one layer configuration fused with the
// M-step's numerator (graph.ExpectedStatser): for a batch it gives what
// Graph.Run and then the M-step graph give (the log marginal, the log
// counts and S = Σ_n Conv2dFilter(x, γ)) without writing the posterior
// out, each image's posterior serving as the M-step's filter while it is
// in cache. EM trains with it when the op set fuses the layer's model;
// the separate graphs stay the reference.
type Fused struct {
	step    *graph.Step // the log marginal, the numerator, the log counts
	ll      *graph.Step // the log marginal and log counts alone
	uniform *tensor.Dense
	beta    *tensor.Dense
}

// FusedResult is the fused E-step and M-step numerator of one batch. Its
// values belong to the Fused graph and are overwritten by the next Run;
// Result.Posterior is nil.
type FusedResult struct {
	Result
	Numer []float32 // S (K,C,w,w)
}

// NewFused returns the fused graph of cfg built from ops, compiled for a
// full batch, with the inputs of New. For an op set that does not fuse the
// layer (it is not a graph.ExpectedStatser, or refuses the model) and for
// kernels of a variance each (whose E-step convolves an energy channel
// the M-step does not) the error wraps graph.ErrNotFused.
func NewFused(cfg graph.Config, ops graph.Ops) (*Fused, error) {
	es, ok := ops.(graph.ExpectedStatser)
	switch {
	case !ok:
		return nil, fmt.Errorf("estep: op set %s: %w", ops.Name(), graph.ErrNotFused)
	case cfg.KernelVariances:
		return nil, fmt.Errorf("estep: kernels of a variance each: %w", graph.ErrNotFused)
	}
	inputs := []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg), temperature(cfg)}
	step, err := graph.NewStep(cfg, inputs, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
		x, w, bias, err := convTerms(cfg, in[0], in[1], in[2], in[3])
		if err != nil {
			return nil, err
		}
		numer, logMarg, logCounts, err := es.ExpectedStats(x, w, bias, cfg.Pad, cfg.Model)
		if err != nil {
			return nil, err
		}
		return []*G.Node{logMarg, numer, logCounts}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	ll, err := graph.NewStep(cfg, inputs, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
		x, w, bias, err := convTerms(cfg, in[0], in[1], in[2], in[3])
		if err != nil {
			return nil, err
		}
		logMarg, logCounts, err := es.LogMarginal(x, w, bias, cfg.Pad, cfg.Model)
		if err != nil {
			return nil, err
		}
		return []*G.Node{logMarg, logCounts}, nil
	})
	if err != nil {
		step.Close()
		return nil, fmt.Errorf("estep: %w", err)
	}
	return &Fused{step: step, ll: ll, uniform: zeros(cfg.Kernels), beta: zeros(1)}, nil
}

// RunTempered runs the fused steps on a batch x (n,C,H,W) with kernels θ,
// log mixing weights logPrior (nil: uniform) at inverse temperature beta
// (Graph.RunTempered).
func (f *Fused) RunTempered(x, theta, logPrior *tensor.Dense, beta float32) (*FusedResult, error) {
	out, err := f.run(f.step, x, theta, logPrior, beta)
	if err != nil {
		return nil, err
	}
	r := &FusedResult{Result: Result{LogMarginal: out[0].Data().([]float32), LogCounts: out[2].Data().([]float32)}, Numer: out[1].Data().([]float32)}
	r.LogLik = sum64(r.LogMarginal)
	return r, nil
}

// LogLikTempered is RunTempered without the numerator, for a pass that
// measures the log-likelihood: the log marginal, the log counts and their
// sum (Result.Posterior is nil).
func (f *Fused) LogLikTempered(x, theta, logPrior *tensor.Dense, beta float32) (*Result, error) {
	out, err := f.run(f.ll, x, theta, logPrior, beta)
	if err != nil {
		return nil, err
	}
	r := &Result{LogMarginal: out[0].Data().([]float32), LogCounts: out[1].Data().([]float32)}
	r.LogLik = sum64(r.LogMarginal)
	return r, nil
}

// run runs one of the fused graph's steps on its inputs.
func (f *Fused) run(step *graph.Step, x, theta, logPrior *tensor.Dense, beta float32) ([]*tensor.Dense, error) {
	if logPrior == nil {
		logPrior = f.uniform
	}
	f.beta.Data().([]float32)[0] = beta
	out, err := step.Run(x, theta, logPrior, f.beta)
	if err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	return out, nil
}

// sum64 returns the sum of v in float64.
func sum64(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s
}

// Step returns the compiled step, to inspect its graph.
func (f *Fused) Step() *graph.Step { return f.step }

// Close releases the compiled programs.
func (f *Fused) Close() error { return errors.Join(f.step.Close(), f.ll.Close()) }
