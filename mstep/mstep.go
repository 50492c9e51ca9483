package mstep

import (
	"fmt"
	"math"

	"calm/graph"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is the compiled M-step numerator of one layer configuration.
type Graph struct {
	cfg   graph.Config
	ops   graph.Ops
	progs map[int]*program // by batch size
}

type program struct {
	*graph.Program
	x, post, numer *G.Node
}

// New returns the M-step graph of cfg built from ops, compiled for a full
// batch; a smaller tail batch gets its own program on first use.
func New(cfg graph.Config, ops graph.Ops) (*Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mstep: %w", err)
	}
	g := &Graph{cfg: cfg, ops: ops, progs: map[int]*program{}}
	if _, err := g.program(cfg.Batch); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Graph) program(n int) (*program, error) {
	if p, ok := g.progs[n]; ok {
		return p, nil
	}
	c := g.cfg
	uh, uw := c.Positions()
	eg := G.NewGraph()
	p := &program{
		x:    G.NewTensor(eg, tensor.Float32, 4, G.WithShape(n, c.Channels, c.Height, c.Width), G.WithName("x")),
		post: G.NewTensor(eg, tensor.Float32, 4, G.WithShape(n, c.Kernels, uh, uw), G.WithName("posterior")),
	}
	var err error
	if p.numer, err = g.ops.Conv2dFilter(p.x, p.post, c.Pad); err != nil {
		return nil, fmt.Errorf("mstep: numerator: %w", err)
	}
	if p.Program, err = graph.Compile(eg); err != nil {
		return nil, fmt.Errorf("mstep: %w", err)
	}
	g.progs[n] = p
	return p, nil
}

// Run returns this batch's numerator S (K,C,w,w) for images x (n,C,H,W) and
// their posterior γ (n,K,Uh,Uw). The result belongs to g and is overwritten
// by the next Run.
func (g *Graph) Run(x, post *tensor.Dense) (*tensor.Dense, error) {
	c := g.cfg
	uh, uw := c.Positions()
	xs, ps := x.Shape(), post.Shape()
	if x.Dtype() != tensor.Float32 || post.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("mstep: want float32 images and posterior, got %v and %v", x.Dtype(), post.Dtype())
	}
	if xs.Dims() != 4 || xs[1] != c.Channels || xs[2] != c.Height || xs[3] != c.Width || xs[0] < 1 || xs[0] > c.Batch {
		return nil, fmt.Errorf("mstep: images have shape %v, want (1…%d,%d,%d,%d)", xs, c.Batch, c.Channels, c.Height, c.Width)
	}
	if !ps.Eq(tensor.Shape{xs[0], c.Kernels, uh, uw}) {
		return nil, fmt.Errorf("mstep: posterior has shape %v, want (%d,%d,%d,%d)", ps, xs[0], c.Kernels, uh, uw)
	}
	p, err := g.program(xs[0])
	if err != nil {
		return nil, err
	}
	if err := p.Run(graph.Binding{Node: p.x, Value: x}, graph.Binding{Node: p.post, Value: post}); err != nil {
		return nil, fmt.Errorf("mstep: %w", err)
	}
	return p.numer.Value().(*tensor.Dense), nil
}

// Stats are the sufficient statistics of an epoch, accumulated in float64
// over its batches.
type Stats struct {
	Numerator []float64 // S, K·C·w·w values in θ's layout
	LogCounts []float64 // b_k = log Σ_{n,u} γ[n,k,u]
	LogLik    float64   // Σ_n ℓ[n]
	Images    int       // images added so far
}

// NewStats returns empty statistics for cfg.
func NewStats(cfg graph.Config) *Stats {
	s := &Stats{
		Numerator: make([]float64, cfg.Kernels*cfg.KernelLen()),
		LogCounts: make([]float64, cfg.Kernels),
	}
	for k := range s.LogCounts {
		s.LogCounts[k] = math.Inf(-1)
	}
	return s
}

// Add adds one batch of n images: its numerator S (K·C·w·w values), its log
// counts b (K) and its log-likelihood.
func (s *Stats) Add(numer, logCounts []float32, loglik float64, n int) error {
	if len(numer) != len(s.Numerator) || len(logCounts) != len(s.LogCounts) {
		return fmt.Errorf("mstep: batch statistics of sizes %d and %d, want %d and %d",
			len(numer), len(logCounts), len(s.Numerator), len(s.LogCounts))
	}
	for i, v := range numer {
		s.Numerator[i] += float64(v)
	}
	for k, b := range logCounts {
		s.LogCounts[k] = logAddExp(s.LogCounts[k], float64(b))
	}
	s.LogLik += loglik
	s.Images += n
	return nil
}

func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// NonFiniteError reports a NaN or Inf in the M-step: the reference's
// "numerical precision limit". Epoch is set by the training loop (0 when
// unknown).
type NonFiniteError struct {
	Epoch  int
	Kernel int
	What   string // "numerator", "count" or "kernel"
	Value  float64
}

func (e *NonFiniteError) Error() string {
	where := fmt.Sprintf("kernel %d", e.Kernel)
	if e.Epoch > 0 {
		where = fmt.Sprintf("epoch %d, %s", e.Epoch, where)
	}
	return fmt.Sprintf("mstep: %s: %s is %v (numerical precision limit reached)", where, e.What, e.Value)
}

// Update returns the new kernels θ_k = S_k / Ñ_k (K,C,w,w) from an epoch's
// statistics, with Ñ_k = (T·N_k + 1)/(T + 1), N_k = exp(b_k), T = Σ_k N_k.
func Update(cfg graph.Config, s *Stats) (*tensor.Dense, error) {
	d := cfg.KernelLen()
	if len(s.Numerator) != cfg.Kernels*d || len(s.LogCounts) != cfg.Kernels {
		return nil, fmt.Errorf("mstep: statistics do not fit %d kernels of %d values", cfg.Kernels, d)
	}
	var total float64
	counts := make([]float64, cfg.Kernels)
	for k, b := range s.LogCounts {
		counts[k] = math.Exp(b)
		if math.IsNaN(b) || math.IsInf(counts[k], 1) {
			return nil, &NonFiniteError{Kernel: k, What: "count", Value: b}
		}
		total += counts[k]
	}
	theta := make([]float32, len(s.Numerator))
	for k, nk := range counts {
		pseudo := (total*nk + 1) / (total + 1)
		for i := k * d; i < (k+1)*d; i++ {
			if v := s.Numerator[i]; math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, &NonFiniteError{Kernel: k, What: "numerator", Value: v}
			}
			t := float32(s.Numerator[i] / pseudo)
			if math.IsInf(float64(t), 0) {
				return nil, &NonFiniteError{Kernel: k, What: "kernel", Value: float64(t)}
			}
			theta[i] = t
		}
	}
	return tensor.New(tensor.WithShape(cfg.Kernels, cfg.Channels, cfg.Size, cfg.Size), tensor.WithBacking(theta)), nil
}
