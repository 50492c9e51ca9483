package graph

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// An Input is one input node of a Step: its name in the graph (unique
// within it: Gorgonia merges nodes of one name) and its shape for a batch
// of n images.
type Input struct {
	Name    string
	Batched bool // the first axis is the batch; a Step's first input must be
	Shape   func(n int) tensor.Shape
}

// Images is the input x (n,C,H,W) of a layer of configuration c.
func Images(c Config) Input {
	return Input{Name: "x", Batched: true, Shape: c.ImageShape}
}

// Kernels is the input θ (K,C,w,w) of a layer of configuration c.
func Kernels(c Config) Input {
	return Input{Name: "theta", Shape: func(int) tensor.Shape { return c.KernelShape() }}
}

// LogPrior is the input log π (K), the log mixing weights, of a layer of
// configuration c.
func LogPrior(c Config) Input {
	return Input{Name: "logprior", Shape: func(int) tensor.Shape { return tensor.Shape{c.Kernels} }}
}

// InverseTemperature is the input β (1) of a tempered E-step.
func InverseTemperature() Input {
	return Input{Name: "beta", Shape: func(int) tensor.Shape { return tensor.Shape{1} }}
}

// Posterior is the input γ (n,K,Uh,Uw) of a layer of configuration c.
func Posterior(c Config) Input {
	return Input{Name: "posterior", Batched: true, Shape: c.MapShape}
}

// Named returns the input under another name, for a second input of the
// same kind (the kernels of a second layer).
func (in Input) Named(name string) Input {
	in.Name = name
	return in
}

// A BuildFunc adds a step's nodes to g, given its input nodes in the order
// of the Step's inputs, and returns the nodes of its outputs.
type BuildFunc func(g *G.ExprGraph, in []*G.Node) (out []*G.Node, err error)

// A Step is a graph built for a batch of n images, compiled once into a
// TapeMachine and run for every batch: the E-step, the M-step and the
// features are Steps. A batch smaller than Config.Batch (the tail of an
// epoch) gets its own compiled graph, built the first time it is needed.
//
// Inputs are bound without copying and are never modified. A Step is not
// safe for concurrent use: its ops keep their buffers from one run to the
// next (and already spread their work over every core).
type Step struct {
	cfg    Config
	inputs []Input
	build  BuildFunc
	progs  map[int]*program // by batch size
}

type program struct {
	g       *G.ExprGraph
	m       G.VM
	in, out []*G.Node
}

// NewStep returns the step of cfg with the given inputs, built by build. The
// graph for a full batch is compiled now, so that its errors surface here.
func NewStep(cfg Config, inputs []Input, build BuildFunc) (*Step, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(inputs) == 0 || !inputs[0].Batched {
		return nil, fmt.Errorf("graph: a step's first input must carry the batch")
	}
	s := &Step{cfg: cfg, inputs: inputs, build: build, progs: map[int]*program{}}
	if _, err := s.program(cfg.Batch); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Step) program(n int) (p *program, err error) {
	if p, ok := s.progs[n]; ok {
		return p, nil
	}
	p = &program{g: G.NewGraph()}
	for _, in := range s.inputs {
		shape := in.Shape(n)
		p.in = append(p.in, G.NewTensor(p.g, tensor.Float32, shape.Dims(), G.WithShape(shape...), G.WithName(in.Name)))
	}
	if p.out, err = s.build(p.g, p.in); err != nil {
		return nil, err
	}
	// Gorgonia panics on compile errors; return them instead.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("graph: compile: %v", r)
		}
	}()
	p.m = G.NewTapeMachine(p.g)
	s.progs[n] = p
	return p, nil
}

// Graph returns the expression graph the step runs for a batch of n
// images, for inspection (package gorgonia.org/gorgonia/encoding/dot
// draws it).
func (s *Step) Graph(n int) (*G.ExprGraph, error) {
	p, err := s.program(n)
	if err != nil {
		return nil, err
	}
	return p.g, nil
}

// Run runs the step on one batch: in[i] is the value of the step's input i,
// float32 of the input's shape, the batch size n (1 ≤ n ≤ Config.Batch)
// read off the first. It returns the outputs, which belong to the step
// and stay valid until its next run.
func (s *Step) Run(in ...*tensor.Dense) ([]*tensor.Dense, error) {
	if len(in) != len(s.inputs) {
		return nil, fmt.Errorf("graph: step of %d inputs run with %d", len(s.inputs), len(in))
	}
	var n int
	for i, v := range in {
		if v == nil || v.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("graph: %s: want a float32 tensor, got %v", s.inputs[i].Name, v)
		}
		if i == 0 {
			n = v.Shape()[0]
			if n < 1 || n > s.cfg.Batch {
				return nil, fmt.Errorf("graph: batch of %d, want 1 to %d", n, s.cfg.Batch)
			}
		}
		if want := s.inputs[i].Shape(n); !v.Shape().Eq(want) {
			return nil, fmt.Errorf("graph: %s has shape %v, want %v", s.inputs[i].Name, v.Shape(), want)
		}
	}
	p, err := s.program(n)
	if err != nil {
		return nil, err
	}
	for i, v := range in {
		if err := G.Let(p.in[i], v); err != nil {
			return nil, fmt.Errorf("graph: bind %s: %w", s.inputs[i].Name, err)
		}
	}
	// Without Reset, a second RunAll silently does nothing.
	p.m.Reset()
	if err := p.m.RunAll(); err != nil {
		return nil, fmt.Errorf("graph: run: %w", err)
	}
	out := make([]*tensor.Dense, len(p.out))
	for i, o := range p.out {
		t, ok := o.Value().(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("graph: output %d is a %T, want a tensor", i, o.Value())
		}
		out[i] = t
	}
	return out, nil
}

// RunInto runs the step like Run and copies output i into dst[i], which
// the caller owns, for every dst[i] that is not nil; each must have exactly
// the output's length.
func (s *Step) RunInto(dst [][]float32, in ...*tensor.Dense) error {
	out, err := s.Run(in...)
	if err != nil {
		return err
	}
	if len(dst) > len(out) {
		return fmt.Errorf("graph: %d destinations for %d outputs", len(dst), len(out))
	}
	for i, d := range dst {
		if d == nil {
			continue
		}
		v := out[i].Data().([]float32)
		if len(d) != len(v) {
			return fmt.Errorf("graph: output %d has %d values, its destination %d", i, len(v), len(d))
		}
		copy(d, v)
	}
	return nil
}

// Close releases the compiled programs.
func (s *Step) Close() error {
	var first error
	for n, p := range s.progs {
		if err := p.m.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.progs, n)
	}
	return first
}
