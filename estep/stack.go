package estep

import (
	"errors"
	"fmt"

	"calm/graph"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A Stage is one layer of a stack as the stack's graphs see it.
type Stage struct {
	Config    graph.Config    // the layer; its Channels, Rows and Cols are its input's
	Transform graph.Transform // what the next layer sees of its log joint
}

// StageParams are the values of one stage's inputs.
type StageParams struct {
	Theta    *tensor.Dense // (K,C,w,w)
	LogPrior *tensor.Dense // (K); nil for uniform weights
	// Variance is σ², the variance of the stage's Gaussians: its log joint
	// is taken at inverse temperature 1/σ² (LogJoint). 0 is read as 1, the
	// paper's.
	Variance float64
	// Variances are σ_k², one per kernel, for a stage with
	// graph.Config.KernelVariances; nil gives every kernel Variance.
	Variances []float64
	// Scale and Shift (K) standardise the transformed maps, channel by
	// channel (graph.ChannelAffine); needed for every stage whose maps feed
	// another.
	Scale, Shift *tensor.Dense
}

// inverseTemperatures writes into beta the inverse temperatures of the
// stage's log joint: 1/σ² (one), or 1/σ_k² for each of its kernels.
func (p StageParams) inverseTemperatures(beta []float32) error {
	if p.Variances == nil {
		for k := range beta {
			beta[k] = InverseTemperature(p.Variance)
		}
		return nil
	}
	if len(p.Variances) != len(beta) {
		return fmt.Errorf("%d variances for a stage of %d inverse temperatures", len(p.Variances), len(beta))
	}
	InverseTemperatures(beta, p.Variances)
	return nil
}

// StackGraph is a compiled graph that carries a batch of images through the
// stages of a stack: x_1 = the images, and for each stage j
//
//	L_j = the log joint of x_j under stage j's kernels
//	x_{j+1} = ChannelAffine(Transform_j(L_j), scale_j, shift_j)
//
// Its output is either x_{L+1}, what a layer on top of the stages sees
// (NewMaps), or the stages' log joints pooled into features (NewStackFeatures).
type StackGraph struct {
	step    *graph.Step
	stages  []Stage
	affine  []bool // whether stage j's scale and shift are inputs
	outs    []int  // values per image of each output
	uniform []*tensor.Dense
	betas   []*tensor.Dense // each stage's inverse temperature, shape (1)
}

// NewMaps returns the graph whose output is what a layer on top of the
// stages sees: their maps, transformed and standardised in turn. With
// standardise false the last stage's transformed maps are left as they
// are (to measure their statistics) and its scale and shift are not
// inputs.
func NewMaps(stages []Stage, ops graph.Ops, standardise bool) (*StackGraph, error) {
	if len(stages) == 0 {
		return nil, fmt.Errorf("estep: a stack of no stages")
	}
	last := len(stages) - 1
	affine := standardised(len(stages), last)
	affine[last] = standardise
	next := stages[last].Transform.Next(stages[last].Config, 1, 1, 0)
	return newStack(stages, ops, len(stages), affine, nil, []int{next.ImageLen()}, func(_ stageMaps, xs []*G.Node) ([]*G.Node, error) {
		return []*G.Node{xs[len(stages)]}, nil
	})
}

// LayerFeatures are the features of one stage of a stack: its log joint,
// or its posterior over kernels for a Posterior pooling, pooled by Pooling.
type LayerFeatures struct {
	Layer   int // the stage, 0-based
	Pooling graph.Pooling
}

// Pooled returns the features of the listed stages, each pooled by p.
func Pooled(p graph.Pooling, layers ...int) []LayerFeatures {
	fs := make([]LayerFeatures, len(layers))
	for i, l := range layers {
		fs[i] = LayerFeatures{Layer: l, Pooling: p}
	}
	return fs
}

// NewStackFeatures returns the graph whose output is, image by image, the
// features of each entry of features, one after the other: a stage's
// pooled log joint or posterior, each stage pooled its own way.
func NewStackFeatures(stages []Stage, ops graph.Ops, features []LayerFeatures) (*StackGraph, error) {
	if len(stages) == 0 || len(features) == 0 {
		return nil, fmt.Errorf("estep: stack features of %d stages, %d layers", len(stages), len(features))
	}
	top := 0
	var outs []int
	for _, f := range features {
		if f.Layer < 0 || f.Layer >= len(stages) {
			return nil, fmt.Errorf("estep: stack features of layer %d of %d", f.Layer+1, len(stages))
		}
		top = max(top, f.Layer)
		outs = append(outs, f.Pooling.Features(stages[f.Layer].Config.Kernels))
	}
	stages = stages[:top+1]
	needs := make([]need, len(stages))
	pooler, _ := ops.(graph.ConvPooler)
	inPlace := func(lf LayerFeatures) bool {
		return pooler != nil && pooler.ConvPools(lf.Pooling) && !stages[lf.Layer].Config.KernelVariances
	}
	for _, f := range features {
		if !inPlace(f) {
			// A tempered posterior is computed from the log joint.
			needs[f.Layer].add(f.Pooling.Posterior && !f.Pooling.Tempered())
		}
	}
	return newStack(stages, ops, top, standardised(len(stages), top), needs, outs, func(maps stageMaps, xs []*G.Node) ([]*G.Node, error) {
		var out []*G.Node
		for i, lf := range features {
			if inPlace(lf) {
				// Pooled inside the convolution: the maps are never written.
				cfg, pr := stages[lf.Layer].Config, maps.params[lf.Layer]
				xx, w, bias, err := convTerms(cfg, xs[lf.Layer], pr[0], pr[1], pr[2])
				if err != nil {
					return nil, fmt.Errorf("estep: features of layer %d: %w", lf.Layer+1, err)
				}
				f, err := pooler.ConvPool(xx, w, bias, cfg.Pad, lf.Pooling)
				if err != nil {
					return nil, fmt.Errorf("estep: features of layer %d: %w", lf.Layer+1, err)
				}
				out = append(out, f)
				continue
			}
			m, err := encoded(maps, xs, stages[lf.Layer].Config, lf, i)
			if err != nil {
				return nil, fmt.Errorf("estep: features of layer %d: %w", lf.Layer+1, err)
			}
			f, err := ops.Pool(m, lf.Pooling)
			if err != nil {
				return nil, fmt.Errorf("estep: features of layer %d: %w", lf.Layer+1, err)
			}
			out = append(out, f)
		}
		return out, nil
	})
}

// encoded returns the maps the i-th feature set lf pools: the stage's log
// joint, its posterior (at the pooling's temperature), or the triangle
// encoding of its log joint (from the stage's input xs[lf.Layer]).
func encoded(maps stageMaps, xs []*G.Node, cfg graph.Config, lf LayerFeatures, i int) (*G.Node, error) {
	l, p := maps.logJoint[lf.Layer], lf.Pooling
	switch {
	case p.Triangle:
		return graph.Triangle(l, xs[lf.Layer], cfg.Width, cfg.Pad)
	case p.Posterior && p.Tempered():
		beta := G.NewConstant(tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{float32(1 / p.Temperature)})),
			G.WithName(fmt.Sprintf("feature-beta-%d", i)))
		scaled, err := graph.Scale(l, beta)
		if err != nil {
			return nil, err
		}
		return graph.KernelPosterior(scaled)
	case p.Posterior:
		return maps.posterior[lf.Layer], nil
	}
	return l, nil
}

// NewStackLogJoint returns the graph whose output is the log joint of the
// last stage, (N,K,Uh,Uw) per batch.
func NewStackLogJoint(stages []Stage, ops graph.Ops) (*StackGraph, error) {
	if len(stages) == 0 {
		return nil, fmt.Errorf("estep: a stack of no stages")
	}
	top := len(stages) - 1
	needs := make([]need, len(stages))
	needs[top].add(false)
	return newStack(stages, ops, top, standardised(len(stages), top), needs, []int{stages[top].Config.MapLen()}, func(maps stageMaps, _ []*G.Node) ([]*G.Node, error) {
		return []*G.Node{maps.logJoint[top]}, nil
	})
}

// standardised returns which of n stages have their scale and shift as
// inputs: the first below, whose maps feed another stage.
func standardised(n, below int) []bool {
	affine := make([]bool, n)
	for j := range below {
		affine[j] = true
	}
	return affine
}

// A need says which maps of a stage the outputs read: its log joint, its
// posterior over kernels at each position, or both.
type need struct{ logJoint, posterior bool }

// add records a read of the posterior (posterior) or of the log joint.
func (n *need) add(posterior bool) {
	if posterior {
		n.posterior = true
	} else {
		n.logJoint = true
	}
}

// stageMaps are the maps of each stage that some output or transform
// reads (nil for the others).
type stageMaps struct {
	logJoint, posterior []*G.Node
	params              [][3]*G.Node // each stage's kernels, log mixing weights and inverse temperature
}

// newStack builds the chain of stages: the first transformed stages have
// their log joints transformed, and standardised where affine is set;
// outputs picks the outputs from the stages' maps (needs[j] says which of
// stage j's it reads; needs may be nil or short) and the inputs x_j (x_0
// the images, x_{j+1} stage j's transformed maps). A stage's posterior
// comes from the op set's fused convolution when it has one
// (graph.JointPosterior, see stageNodes); a posterior read twice (by the
// transform and a feature) is computed once.
func newStack(stages []Stage, ops graph.Ops, transformed int, affine []bool, needs []need, outs []int, outputs func(maps stageMaps, xs []*G.Node) ([]*G.Node, error)) (*StackGraph, error) {
	needs = append(needs, make([]need, max(0, len(stages)-len(needs)))...)
	for j := 0; j < transformed; j++ {
		needs[j].add(stages[j].Transform.Posterior)
	}
	for j := 1; j < len(stages); j++ {
		prev, cfg := stages[j-1], stages[j].Config
		want := prev.Transform.Next(prev.Config, cfg.Kernels, cfg.Width, cfg.Pad)
		want.Model, want.KernelVariances = cfg.Model, cfg.KernelVariances // each stage's own choice, not its input's
		if want != cfg {
			return nil, fmt.Errorf("estep: stage %d is %+v, but stage %d gives it %+v", j+1, cfg, j, want)
		}
	}
	inputs := []graph.Input{graph.Images(stages[0].Config)}
	s := &StackGraph{stages: stages, affine: affine, outs: outs}
	for j, st := range stages {
		c := st.Config
		inputs = append(inputs, graph.Kernels(c).Named(fmt.Sprint("theta", j+1)), graph.LogPrior(c).Named(fmt.Sprint("logprior", j+1)),
			temperature(c).Named(fmt.Sprint("beta", j+1)))
		if affine[j] {
			inputs = append(inputs, graph.LogPrior(c).Named(fmt.Sprint("scale", j+1)), graph.LogPrior(c).Named(fmt.Sprint("shift", j+1)))
		}
		s.uniform = append(s.uniform, zeros(c.Kernels))
		s.betas = append(s.betas, zeros(temperature(c).Shape(0)[0]))
	}
	step, err := graph.NewStep(stages[0].Config, inputs, func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
		xs := []*G.Node{in[0]}
		maps := stageMaps{logJoint: make([]*G.Node, len(stages)), posterior: make([]*G.Node, len(stages))}
		at := 1
		for j, st := range stages {
			maps.params = append(maps.params, [3]*G.Node{in[at], in[at+1], in[at+2]})
			l, p, err := stageNodes(ops, st.Config, needs[j], xs[j], in[at], in[at+1], in[at+2])
			if err != nil {
				return nil, fmt.Errorf("estep: layer %d: %w", j+1, err)
			}
			at += 3
			maps.logJoint[j], maps.posterior[j] = l, p
			if j >= transformed {
				continue
			}
			var t *G.Node
			if st.Transform.Posterior {
				t, err = st.Transform.FromPosterior(p)
			} else {
				t, err = st.Transform.Apply(l)
			}
			if err != nil {
				return nil, fmt.Errorf("estep: layer %d: %w", j+1, err)
			}
			if affine[j] {
				if t, err = graph.ChannelAffine(t, in[at], in[at+1]); err != nil {
					return nil, fmt.Errorf("estep: layer %d: %w", j+1, err)
				}
				at += 2
			}
			xs = append(xs, t)
		}
		return outputs(maps, xs)
	})
	if err != nil {
		return nil, fmt.Errorf("estep: %w", err)
	}
	s.step = step
	return s, nil
}

// stageNodes adds a stage's log joint and its posterior over kernels at
// each position, each only if n asks for it (else nil). The posterior
// comes from the op set's fused convolution when it has one (the patch
// model's per-position posterior, whatever the stage's own model), so
// that the log joint is not written for it; else it is KernelPosterior
// of the log joint. Either way it does not depend on whether the log joint
// is asked for too: a stage's maps, and so every stage above it, are the
// same bits whichever features a graph computes.
func stageNodes(ops graph.Ops, cfg graph.Config, n need, x, theta, logPrior, beta *G.Node) (logJoint, post *G.Node, err error) {
	if n.posterior {
		if jp, ok := ops.(graph.JointPosterior); ok {
			xx, w, bias, err := convTerms(cfg, x, theta, logPrior, beta)
			if err != nil {
				return nil, nil, err
			}
			_, post, _, err = jp.LogJointPosterior(xx, w, bias, cfg.Pad, graph.PatchModel)
			if err != nil && !errors.Is(err, graph.ErrNotFused) {
				return nil, nil, err
			}
		}
	}
	if n.logJoint || n.posterior && post == nil {
		if logJoint, err = LogJoint(ops, cfg, x, theta, logPrior, beta); err != nil {
			return nil, nil, err
		}
	}
	if n.posterior && post == nil {
		if post, err = graph.KernelPosterior(logJoint); err != nil {
			return nil, nil, err
		}
	}
	if !n.logJoint {
		logJoint = nil
	}
	return logJoint, post, nil
}

// Len is the number of output values per image.
func (s *StackGraph) Len() int {
	var n int
	for _, o := range s.outs {
		n += o
	}
	return n
}

// RunInto runs the graph on a batch x (n,C,H,W) of the first stage's
// images with the stages' parameters (params[j] for stage j), writing n·Len()
// values into dst, image by image.
func (s *StackGraph) RunInto(dst []float32, x *tensor.Dense, params []StageParams) error {
	if len(params) < len(s.stages) {
		return fmt.Errorf("estep: %d stages' parameters for a stack of %d", len(params), len(s.stages))
	}
	in := []*tensor.Dense{x}
	for j := range s.stages {
		p := params[j]
		lp := p.LogPrior
		if lp == nil {
			lp = s.uniform[j]
		}
		beta := s.betas[j]
		if err := p.inverseTemperatures(beta.Data().([]float32)); err != nil {
			return fmt.Errorf("estep: layer %d: %w", j+1, err)
		}
		in = append(in, p.Theta, lp, beta)
		if s.affine[j] {
			if p.Scale == nil || p.Shift == nil {
				return fmt.Errorf("estep: layer %d has no standardisation", j+1)
			}
			in = append(in, p.Scale, p.Shift)
		}
	}
	out, err := s.step.Run(in...)
	if err != nil {
		return fmt.Errorf("estep: stack: %w", err)
	}
	n, per := x.Shape()[0], s.Len()
	if len(dst) != n*per {
		return fmt.Errorf("estep: stack: %d values for %d images of %d", len(dst), n, per)
	}
	off := 0
	for o, t := range out {
		v := t.Data().([]float32)
		w := s.outs[o]
		for i := 0; i < n; i++ {
			copy(dst[i*per+off:i*per+off+w], v[i*w:(i+1)*w])
		}
		off += w
	}
	for i, v := range dst {
		if v != v {
			return fmt.Errorf("estep: stack: NaN for image %d, output %d", i/per, i%per)
		}
	}
	return nil
}

// Close releases the compiled programs.
func (s *StackGraph) Close() error { return s.step.Close() }
