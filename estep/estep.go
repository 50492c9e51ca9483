package estep

import (
	"fmt"
	"math"

	"calm/graph"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is the compiled E-step of one layer configuration.
type Graph struct {
	cfg   graph.Config
	ops   graph.Ops
	progs map[int]*program // by batch size
}

type program struct {
	*graph.Program
	x, theta                          *G.Node
	logJoint, logMarg, post, logCount *G.Node
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

// New returns the E-step graph of cfg built from ops. The graph for a full
// batch is compiled now, so that configuration errors surface here.
func New(cfg graph.Config, ops graph.Ops) (*Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("estep: %w", err)
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
	eg := G.NewGraph()
	p := &program{}
	var err error
	p.x, p.theta, p.logJoint, err = LogJoint(eg, g.ops, g.cfg, n)
	if err != nil {
		return nil, err
	}
	if p.logMarg, p.post, p.logCount, err = g.ops.Posterior(p.logJoint); err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	if p.Program, err = graph.Compile(eg); err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	g.progs[n] = p
	return p, nil
}

// LogJoint adds to eg the inputs x (n,C,H,W) and θ (K,C,w,w) of cfg and the
// log joint L = Conv2d(x, θ, bias −½‖θ_k‖², padding p) built from ops.
func LogJoint(eg *G.ExprGraph, ops graph.Ops, cfg graph.Config, n int) (x, theta, logJoint *G.Node, err error) {
	x = G.NewTensor(eg, tensor.Float32, 4, G.WithShape(n, cfg.Channels, cfg.Height, cfg.Width), G.WithName("x"))
	theta = G.NewTensor(eg, tensor.Float32, 4, G.WithShape(cfg.Kernels, cfg.Channels, cfg.Size, cfg.Size), G.WithName("theta"))
	bias, err := graph.NegHalfSqNorm(theta)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("estep: bias: %w", err)
	}
	if logJoint, err = ops.Conv2d(x, theta, bias, cfg.Pad); err != nil {
		return nil, nil, nil, fmt.Errorf("estep: log joint: %w", err)
	}
	return x, theta, logJoint, nil
}

// Run runs the E-step on a batch x (n,C,H,W), 1 ≤ n ≤ cfg.Batch, with
// kernels θ (K,C,w,w).
func (g *Graph) Run(x, theta *tensor.Dense) (*Result, error) {
	n, err := checkInputs(g.cfg, x, theta)
	if err != nil {
		return nil, err
	}
	p, err := g.program(n)
	if err != nil {
		return nil, err
	}
	if err := p.Run(graph.Binding{Node: p.x, Value: x}, graph.Binding{Node: p.theta, Value: theta}); err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	r := &Result{
		LogJoint:    p.logJoint.Value().(*tensor.Dense),
		LogMarginal: p.logMarg.Value().Data().([]float32),
		Posterior:   p.post.Value().(*tensor.Dense),
		LogCounts:   p.logCount.Value().Data().([]float32),
	}
	for _, l := range r.LogMarginal {
		r.LogLik += float64(l)
	}
	return r, nil
}

// checkInputs checks x and θ against cfg and returns the batch size.
func checkInputs(cfg graph.Config, x, theta *tensor.Dense) (int, error) {
	if x.Dtype() != tensor.Float32 || theta.Dtype() != tensor.Float32 {
		return 0, fmt.Errorf("estep: want float32 images and kernels, got %v and %v", x.Dtype(), theta.Dtype())
	}
	xs, ts := x.Shape(), theta.Shape()
	if xs.Dims() != 4 || xs[1] != cfg.Channels || xs[2] != cfg.Height || xs[3] != cfg.Width {
		return 0, fmt.Errorf("estep: images have shape %v, want (n,%d,%d,%d)", xs, cfg.Channels, cfg.Height, cfg.Width)
	}
	if n := xs[0]; n < 1 || n > cfg.Batch {
		return 0, fmt.Errorf("estep: batch of %d images, want 1 to %d", n, cfg.Batch)
	}
	if !ts.Eq(tensor.Shape{cfg.Kernels, cfg.Channels, cfg.Size, cfg.Size}) {
		return 0, fmt.Errorf("estep: kernels have shape %v, want (%d,%d,%d,%d)", ts, cfg.Kernels, cfg.Channels, cfg.Size, cfg.Size)
	}
	return xs[0], nil
}

// Features computes image-wide pooled features, f[n,k] = logsumexp_u L[n,k,u]
// by default, with the same log-joint graph as the E-step.
type Features struct {
	cfg   graph.Config
	ops   graph.Ops
	progs map[int]*featProgram
}

type featProgram struct {
	*graph.Program
	x, theta, feat *G.Node
}

// NewFeatures returns the feature extractor of cfg built from ops; it pools
// over positions with graph.Pool (ops.LogSumExp unless ops is a
// graph.Pooler).
func NewFeatures(cfg graph.Config, ops graph.Ops) (*Features, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	f := &Features{cfg: cfg, ops: ops, progs: map[int]*featProgram{}}
	if _, err := f.program(cfg.Batch); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Features) program(n int) (*featProgram, error) {
	if p, ok := f.progs[n]; ok {
		return p, nil
	}
	eg := G.NewGraph()
	p := &featProgram{}
	x, theta, logJoint, err := LogJoint(eg, f.ops, f.cfg, n)
	if err != nil {
		return nil, err
	}
	p.x, p.theta = x, theta
	if p.feat, err = graph.Pool(f.ops, logJoint, 2, 3); err != nil {
		return nil, fmt.Errorf("estep: features: %w", err)
	}
	if p.Program, err = graph.Compile(eg); err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	f.progs[n] = p
	return p, nil
}

// Run returns the features (n,K) of a batch x (n,C,H,W) under θ, as a slice
// the caller owns.
func (f *Features) Run(x, theta *tensor.Dense) ([]float32, error) {
	n, err := checkInputs(f.cfg, x, theta)
	if err != nil {
		return nil, err
	}
	p, err := f.program(n)
	if err != nil {
		return nil, err
	}
	if err := p.Run(graph.Binding{Node: p.x, Value: x}, graph.Binding{Node: p.theta, Value: theta}); err != nil {
		return nil, fmt.Errorf("estep: features: %w", err)
	}
	out := append([]float32(nil), p.feat.Value().Data().([]float32)...)
	for i, v := range out {
		if math.IsNaN(float64(v)) {
			return nil, fmt.Errorf("estep: features: NaN for image %d, kernel %d", i/f.cfg.Kernels, i%f.cfg.Kernels)
		}
	}
	return out, nil
}
