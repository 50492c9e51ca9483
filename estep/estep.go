package estep

import (
	"errors"
	"fmt"
	"math"

	"calm/graph"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is the compiled E-step of one layer configuration.
type Graph struct {
	step    *graph.Step
	uniform *tensor.Dense // zero log weights, for a nil logPrior
	beta    *tensor.Dense // the inverse temperature: (1), or (K) with Config.KernelVariances

	kernelVariances bool
}

// Result is the E-step of one batch of n images. Its tensors belong to the
// Graph and are overwritten by the next Run.
type Result struct {
	LogMarginal []float32     // ℓ (n)
	Posterior   *tensor.Dense // γ (n,K,Uh,Uw)
	LogCounts   []float32     // b (K): this batch's log expected kernel counts
	LogLik      float64       // Σ_n ℓ[n], summed in float64
}

// New returns the E-step graph of cfg built from ops, compiled for a full
// batch. Its inputs are the images, θ, the log mixing weights and the
// inverse temperature β of the log joint (LogJoint): 1 in the paper, 1/σ²
// for kernels of variance σ², and a schedule under deterministic
// annealing (Ueda & Nakano 1998); with cfg.KernelVariances, one β_k = 1/σ_k²
// for each kernel. Its outputs are what EM reads: the log marginal, the
// posterior and the log counts. The log joint is a step on the way, never
// written out by an op set that fuses it with the posterior
// (graph.JointPosterior); LogJoint builds it for the features.
func New(cfg graph.Config, ops graph.Ops) (*Graph, error) {
	step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg), temperature(cfg)},
		func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
			x, w, bias, err := convTerms(cfg, in[0], in[1], in[2], in[3])
			if err != nil {
				return nil, err
			}
			// An op set that fuses the convolution and the posterior;
			// else the log joint, then the model's posterior.
			if jp, ok := ops.(graph.JointPosterior); ok {
				logMarg, post, logCounts, err := jp.LogJointPosterior(x, w, bias, cfg.Pad, cfg.Model)
				switch {
				case err == nil:
					return []*G.Node{logMarg, post, logCounts}, nil
				case !errors.Is(err, graph.ErrNotFused):
					return nil, fmt.Errorf("estep: %w", err)
				}
			}
			logJoint, err := ops.Conv2d(x, w, bias, cfg.Pad)
			if err != nil {
				return nil, fmt.Errorf("estep: log joint: %w", err)
			}
			posterior := ops.Posterior
			if cfg.Model == graph.PatchModel {
				posterior = graph.PatchPosterior
			}
			logMarg, post, logCounts, err := posterior(logJoint)
			if err != nil {
				return nil, fmt.Errorf("estep: %w", err)
			}
			return []*G.Node{logMarg, post, logCounts}, nil
		})
	if err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	return &Graph{step: step, uniform: zeros(cfg.Kernels), beta: zeros(temperature(cfg).Shape(0)[0]), kernelVariances: cfg.KernelVariances}, nil
}

// temperature is the input β of a layer of configuration cfg: one for all
// kernels (1), or one for each (K) with cfg.KernelVariances.
func temperature(cfg graph.Config) graph.Input {
	if cfg.KernelVariances {
		return graph.Precisions(cfg)
	}
	return graph.InverseTemperature()
}

// LogJoint adds to the graph of x (n,C,H,W) and θ (K,C,w,w) the log joint
// of a layer of configuration cfg at inverse temperature β (1),
//
//	L = Conv2d(x, βθ, bias −½β‖θ_k‖² + logPrior[k], padding cfg.Pad)
//
// built from ops: β(θ_k·x_u − ½‖θ_k‖²) + log π_k, the Gaussian part of
// kernels of variance 1/β (1 in the paper). With cfg.KernelVariances, β
// (K) holds one inverse variance per kernel and L is the whole Gaussian
// log density, −½β_k‖x_u − θ_k‖² + (D/2)·log β_k + log π_k
// (graph.EnergyChannel).
func LogJoint(ops graph.Ops, cfg graph.Config, x, theta, logPrior, beta *G.Node) (*G.Node, error) {
	x, w, bias, err := convTerms(cfg, x, theta, logPrior, beta)
	if err != nil {
		return nil, err
	}
	l, err := ops.Conv2d(x, w, bias, cfg.Pad)
	if err != nil {
		return nil, fmt.Errorf("estep: log joint: %w", err)
	}
	return l, nil
}

// convTerms returns the input, weights and bias of the convolution that
// gives LogJoint: x, βθ and −½β‖θ_k‖² + logPrior[k]; with
// cfg.KernelVariances, x with its energy channel and the kernels and bias
// of graph.PrecisionKernels and graph.PrecisionBias.
func convTerms(cfg graph.Config, x, theta, logPrior, beta *G.Node) (xx, w, bias *G.Node, err error) {
	if cfg.KernelVariances {
		if xx, err = graph.EnergyChannel(x); err != nil {
			return nil, nil, nil, fmt.Errorf("estep: %w", err)
		}
		if w, err = graph.PrecisionKernels(theta, beta); err != nil {
			return nil, nil, nil, fmt.Errorf("estep: %w", err)
		}
		if bias, err = graph.PrecisionBias(theta, logPrior, beta); err != nil {
			return nil, nil, nil, fmt.Errorf("estep: bias: %w", err)
		}
		return xx, w, bias, nil
	}
	if w, err = graph.Scale(theta, beta); err != nil {
		return nil, nil, nil, fmt.Errorf("estep: %w", err)
	}
	if bias, err = graph.KernelBias(theta, logPrior, beta); err != nil {
		return nil, nil, nil, fmt.Errorf("estep: bias: %w", err)
	}
	return x, w, bias, nil
}

// InverseTemperature returns β = 1/σ², the inverse temperature of the log
// joint of kernels of variance σ² (LogJoint); a variance of 0 stands for
// the paper's, 1.
func InverseTemperature(variance float64) float32 {
	if variance == 0 {
		return 1
	}
	return float32(1 / variance)
}

// InverseTemperatures writes into beta the inverse temperature of each of
// variances, one per kernel (InverseTemperature), for RunPrecise.
func InverseTemperatures(beta []float32, variances []float64) {
	for k, v := range variances {
		beta[k] = InverseTemperature(v)
	}
}

// Step returns the compiled step, to inspect its graph.
func (g *Graph) Step() *graph.Step { return g.step }

// Run runs the E-step on a batch x (n,C,H,W), 1 ≤ n ≤ cfg.Batch, with
// kernels θ (K,C,w,w) and log mixing weights logPrior (K; nil for uniform
// weights, as in the paper).
func (g *Graph) Run(x, theta, logPrior *tensor.Dense) (*Result, error) {
	return g.RunTempered(x, theta, logPrior, 1)
}

// RunTempered is Run at inverse temperature beta (LogJoint): the
// Gaussian part of the log joint is scaled by β, so the posterior is
// softer for β < 1 and harder for β > 1, and the log marginal and LL are
// those of the scaled joint. With graph.Config.KernelVariances every kernel
// gets β.
func (g *Graph) RunTempered(x, theta, logPrior *tensor.Dense, beta float32) (*Result, error) {
	b := g.beta.Data().([]float32)
	for k := range b {
		b[k] = beta
	}
	return g.run(x, theta, logPrior)
}

// RunPrecise is Run for a layer whose kernels each have their own
// variance (graph.Config.KernelVariances), with inverse variances
// precision (K), 1/σ_k² each.
func (g *Graph) RunPrecise(x, theta, logPrior *tensor.Dense, precision []float32) (*Result, error) {
	b := g.beta.Data().([]float32)
	if !g.kernelVariances {
		return nil, fmt.Errorf("estep: kernels of one shared variance given %d precisions", len(precision))
	}
	if len(precision) != len(b) {
		return nil, fmt.Errorf("estep: %d precisions for %d kernels", len(precision), len(b))
	}
	copy(b, precision)
	return g.run(x, theta, logPrior)
}

func (g *Graph) run(x, theta, logPrior *tensor.Dense) (*Result, error) {
	if logPrior == nil {
		logPrior = g.uniform
	}
	out, err := g.step.Run(x, theta, logPrior, g.beta)
	if err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	r := &Result{
		LogMarginal: out[0].Data().([]float32),
		Posterior:   out[1],
		LogCounts:   out[2].Data().([]float32),
	}
	r.LogLik = sum64(r.LogMarginal)
	return r, nil
}

// Close releases the compiled programs.
func (g *Graph) Close() error { return g.step.Close() }

func zeros(k int) *tensor.Dense {
	return tensor.New(tensor.WithShape(k), tensor.WithBacking(make([]float32, k)))
}

// MostProbable returns, for one image's posterior γ (K maps of u
// positions), the kernel with the most posterior mass and that mass.
func MostProbable(post []float32, k, u int) (kernel int, mass float64) {
	mass = math.Inf(-1)
	for kk := 0; kk < k; kk++ {
		var p float64
		for _, v := range post[kk*u : (kk+1)*u] {
			p += float64(v)
		}
		if p > mass {
			kernel, mass = kk, p
		}
	}
	return kernel, mass
}
