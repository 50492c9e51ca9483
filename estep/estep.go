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
}

// Result is the E-step of one batch of n images. Its tensors belong to the
// Graph and are overwritten by the next Run.
type Result struct {
	LogJoint    *tensor.Dense // L (n,K,Uh,Uw)
	LogMarginal []float32     // ℓ (n)
	Posterior   *tensor.Dense // γ (n,K,Uh,Uw)
	LogCounts   []float32     // b (K): this batch's log expected kernel counts
	LogLik      float64       // Σ_n ℓ[n], summed in float64
}

// New returns the E-step graph of cfg built from ops, compiled for a full
// batch.
func New(cfg graph.Config, ops graph.Ops) (*Graph, error) {
	step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg)},
		func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
			// An op set that fuses the convolution and the posterior;
			// else the log joint, then the model's posterior.
			if jp, ok := ops.(graph.JointPosterior); ok {
				bias, err := graph.KernelBias(in[1], in[2])
				if err != nil {
					return nil, fmt.Errorf("estep: bias: %w", err)
				}
				logJoint, logMarg, post, logCounts, err := jp.LogJointPosterior(in[0], in[1], bias, cfg.Pad, cfg.Model)
				switch {
				case err == nil:
					return []*G.Node{logJoint, logMarg, post, logCounts}, nil
				case !errors.Is(err, graph.ErrNotFused):
					return nil, fmt.Errorf("estep: %w", err)
				}
			}
			logJoint, err := LogJoint(ops, cfg.Pad, in[0], in[1], in[2])
			if err != nil {
				return nil, err
			}
			posterior := ops.Posterior
			if cfg.Model == graph.PatchModel {
				posterior = graph.PatchPosterior
			}
			logMarg, post, logCounts, err := posterior(logJoint)
			if err != nil {
				return nil, fmt.Errorf("estep: %w", err)
			}
			return []*G.Node{logJoint, logMarg, post, logCounts}, nil
		})
	if err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	return &Graph{step: step, uniform: zeros(cfg.Kernels)}, nil
}

// LogJoint adds to the graph of x (n,C,H,W) and θ (K,C,w,w) the log joint
// L = Conv2d(x, θ, bias −½‖θ_k‖² + logPrior[k], padding pad) built from ops.
func LogJoint(ops graph.Ops, pad int, x, theta, logPrior *G.Node) (*G.Node, error) {
	bias, err := graph.KernelBias(theta, logPrior)
	if err != nil {
		return nil, fmt.Errorf("estep: bias: %w", err)
	}
	l, err := ops.Conv2d(x, theta, bias, pad)
	if err != nil {
		return nil, fmt.Errorf("estep: log joint: %w", err)
	}
	return l, nil
}

// Step returns the compiled step, to inspect its graph.
func (g *Graph) Step() *graph.Step { return g.step }

// Run runs the E-step on a batch x (n,C,H,W), 1 ≤ n ≤ cfg.Batch, with
// kernels θ (K,C,w,w) and log mixing weights logPrior (K; nil for uniform
// weights, as in the paper).
func (g *Graph) Run(x, theta, logPrior *tensor.Dense) (*Result, error) {
	if logPrior == nil {
		logPrior = g.uniform
	}
	out, err := g.step.Run(x, theta, logPrior)
	if err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	r := &Result{
		LogJoint:    out[0],
		LogMarginal: out[1].Data().([]float32),
		Posterior:   out[2],
		LogCounts:   out[3].Data().([]float32),
	}
	for _, l := range r.LogMarginal {
		r.LogLik += float64(l)
	}
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
