package graph

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Ops is the set of graph operations the E-step and M-step graphs are built
// from. Each method adds nodes to the graph of its arguments and returns the
// node of the result; shapes are checked when the graph is built.
//
// An implementation may fuse or reorder work freely but must compute the
// functions documented here; swap one in by passing it to estep.New and
// mstep.New.
type Ops interface {
	// Name identifies the op set in logs and metrics ("gorgonia", "fast").
	Name() string

	// Conv2d returns the cross-correlation (no kernel flip, as in PyTorch) of
	// images x (N,C,H,W) with kernels w (K,C,kh,kw) under zero padding pad,
	// plus bias (K) on every position of output channel k:
	//
	//	out[n,k,y,x] = bias[k] + Σ_{c,i,j} w[k,c,i,j] · xpad[n,c,y+i,x+j]
	//
	// The result has shape (N,K,H+2pad−kh+1,W+2pad−kw+1).
	Conv2d(x, w, bias *G.Node, pad int) (*G.Node, error)

	// Conv2dFilter is the convolution whose output is a filter (cuDNN's
	// "backward filter"): for images x (N,C,H,W) and maps f (N,K,Uh,Uw),
	//
	//	out[k,c,i,j] = Σ_n Σ_{y,x} f[n,k,y,x] · xpad[n,c,y+i,x+j]
	//
	// with shape (K,C,H+2pad−Uh+1,W+2pad−Uw+1). With f the posterior over
	// positions it is the M-step's numerator S.
	Conv2dFilter(x, f *G.Node, pad int) (*G.Node, error)

	// LogSumExp returns log Σ exp(x) over the given axes, computed stably
	// (the maximum is subtracted first) with float64 accumulation.
	LogSumExp(x *G.Node, axes ...int) (*G.Node, error)

	// Posterior returns, for a log joint L (N,K,Uh,Uw), the log marginal
	// ℓ (N), the posterior γ (N,K,Uh,Uw) and the log counts b (K):
	//
	//	ℓ[n] = logsumexp_{k,u} L[n,k,u]
	//	γ[n,k,u] = exp(L[n,k,u] − ℓ[n])
	//	b[k] = log Σ_{n,u} γ[n,k,u]
	Posterior(logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error)
}

// Pooler is an optional capability of an op set: the pooling over
// positions that turns the log joint (N,K,Uh,Uw) into features (N,K). Op
// sets without it pool with LogSumExp, which makes f[n,k] the log
// likelihood of image n under kernel k (up to a constant).
type Pooler interface {
	Pool(x *G.Node, axes ...int) (*G.Node, error)
}

// Pool pools x over axes with ops' Pool if it has one, else its LogSumExp.
func Pool(ops Ops, x *G.Node, axes ...int) (*G.Node, error) {
	if p, ok := ops.(Pooler); ok {
		return p.Pool(x, axes...)
	}
	return ops.LogSumExp(x, axes...)
}

// Stock is the op set made of Gorgonia's own operations: G.Conv2d (im2col of
// the whole batch followed by one matrix product) and, because Gorgonia's
// LogSumExp is wrong (gorgonia v0.9.18, operations.go), this package's
// LogSumExpOp. It is the baseline every faster op set is tested against.
type Stock struct{}

// Name returns "gorgonia".
func (Stock) Name() string { return "gorgonia" }

// Conv2d implements Ops with G.Conv2d and a broadcast addition of the bias.
func (Stock) Conv2d(x, w, bias *G.Node, pad int) (*G.Node, error) {
	if err := checkConv(x, w, bias); err != nil {
		return nil, err
	}
	ws := w.Shape()
	conv, err := G.Conv2d(x, w, ws[2:4].Clone(), []int{pad, pad}, []int{1, 1}, []int{1, 1})
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d: %w", err)
	}
	out, err := G.BroadcastAdd(conv, bias, nil, []byte{0, 2, 3})
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d bias: %w", err)
	}
	return out, nil
}

// Conv2dFilter implements Ops with G.Conv2d over the batch axis: with
// Y = x transposed to (C,N,H,W) and F = f transposed to (K,N,Uh,Uw),
// Conv2d(Y, F) has shape (C,K,kh,kw) and is the result transposed.
func (Stock) Conv2dFilter(x, f *G.Node, pad int) (*G.Node, error) {
	if err := checkFilter(x, f, pad); err != nil {
		return nil, err
	}
	y, err := G.Transpose(x, 1, 0, 2, 3)
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	ft, err := G.Transpose(f, 1, 0, 2, 3)
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	fs := f.Shape()
	st, err := G.Conv2d(y, ft, fs[2:4].Clone(), []int{pad, pad}, []int{1, 1}, []int{1, 1})
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	out, err := G.Transpose(st, 1, 0, 2, 3)
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	return out, nil
}

// LogSumExp implements Ops with this package's LogSumExp.
func (Stock) LogSumExp(x *G.Node, axes ...int) (*G.Node, error) {
	return LogSumExp(x, axes...)
}

// Posterior implements Ops with LogSumExp, SubRows and Exp.
func (s Stock) Posterior(logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error) {
	return posteriorParts(s, logJoint)
}

// checkConv checks the shapes of a Conv2d before any node is built, so that
// errors name the operands instead of surfacing from deep inside Gorgonia.
func checkConv(x, w, bias *G.Node) error {
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 4 || ws.Dims() != 4 {
		return fmt.Errorf("graph: conv2d wants 4-D images and kernels, got %v and %v", xs, ws)
	}
	if xs[1] != ws[1] {
		return fmt.Errorf("graph: conv2d: images have %d channels, kernels %d", xs[1], ws[1])
	}
	if bs := bias.Shape(); bs.TotalSize() != ws[0] || bs.Dims() != 1 {
		return fmt.Errorf("graph: conv2d: bias has shape %v, want (%d)", bs, ws[0])
	}
	if x.Dtype() != w.Dtype() || x.Dtype() != bias.Dtype() {
		return fmt.Errorf("graph: conv2d: mixed types %v, %v, %v", x.Dtype(), w.Dtype(), bias.Dtype())
	}
	return nil
}

func checkFilter(x, f *G.Node, pad int) error {
	xs, fs := x.Shape(), f.Shape()
	if xs.Dims() != 4 || fs.Dims() != 4 {
		return fmt.Errorf("graph: conv2d filter wants 4-D images and maps, got %v and %v", xs, fs)
	}
	if xs[0] != fs[0] {
		return fmt.Errorf("graph: conv2d filter: %d images but %d maps", xs[0], fs[0])
	}
	if fs[2] > xs[2]+2*pad || fs[3] > xs[3]+2*pad {
		return fmt.Errorf("graph: conv2d filter: maps %v larger than padded images %v (pad %d)", fs, xs, pad)
	}
	if x.Dtype() != f.Dtype() {
		return fmt.Errorf("graph: conv2d filter: mixed types %v, %v", x.Dtype(), f.Dtype())
	}
	return nil
}

// OpSets lists the names that Lookup knows, the default first.
func OpSets() []string { return []string{Fast{}.Name(), Stock{}.Name()} }

// Lookup returns the op set of the given name ("fast" or "gorgonia"). To
// try an op set of your own, add it here and pass its name to -conv.
func Lookup(name string) (Ops, error) {
	switch name {
	case Fast{}.Name():
		return Fast{}, nil
	case Stock{}.Name():
		return Stock{}, nil
	}
	return nil, fmt.Errorf("graph: unknown op set %q (have %v)", name, OpSets())
}
