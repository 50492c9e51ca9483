package graph

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Program is a graph compiled once into a TapeMachine and run once per batch.
type Program struct {
	g *G.ExprGraph
	m G.VM
}

// Compile compiles g into a TapeMachine. Gorgonia panics on compile errors;
// Compile returns them as errors instead.
func Compile(g *G.ExprGraph) (p *Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("graph: compile: %v", r)
		}
	}()
	return &Program{g: g, m: G.NewTapeMachine(g)}, nil
}

// Binding gives an input node its value for one run.
type Binding struct {
	Node  *G.Node
	Value G.Value
}

// Run binds the inputs (without copying them) and runs the whole program.
// Values of nodes computed by the run stay valid until the next Run.
func (p *Program) Run(inputs ...Binding) error {
	for _, b := range inputs {
		if err := G.Let(b.Node, b.Value); err != nil {
			return fmt.Errorf("graph: bind %v: %w", b.Node.Name(), err)
		}
	}
	// Without Reset, a second RunAll silently does nothing.
	p.m.Reset()
	if err := p.m.RunAll(); err != nil {
		return fmt.Errorf("graph: run: %w", err)
	}
	return nil
}

// Close releases the machine.
func (p *Program) Close() error { return p.m.Close() }
