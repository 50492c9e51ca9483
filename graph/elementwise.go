package graph

import (
	"fmt"
	"math"

	"calm/internal/vecmath"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SubRows adds to x's graph a node computing x[n,…] − r[n] for x of any
// shape (N,…) and r of shape (N): the log posterior L − ℓ of the E-step.
//
// Unlike G.BroadcastSub it never writes into x's buffer, so x stays readable
// after the run.
func SubRows(x, r *G.Node) (*G.Node, error) {
	xs, rs := x.Shape(), r.Shape()
	if xs.Dims() < 1 || rs.Dims() != 1 || rs[0] != xs[0] {
		return nil, fmt.Errorf("graph: subrows: shapes %v and %v, want (N,…) and (N)", xs, rs)
	}
	n, err := G.ApplyOp(subRowsOp{opBase: newBase("SubRows/%d", xs.Dims()), dims: xs.Dims()}, x, r)
	if err != nil {
		return nil, fmt.Errorf("graph: subrows: %w", err)
	}
	return n, nil
}

type subRowsOp struct {
	opBase
	dims int
}

func (op subRowsOp) Arity() int { return 2 }

func (op subRowsOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: op.dims, Of: a}
	return hm.NewFnType(t, G.TensorType{Dims: 1, Of: a}, t)
}

func (op subRowsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("graph: subrows: want a shape, got %T", in[0])
	}
	return s.Clone(), nil
}

func (op subRowsOp) Do(vals ...G.Value) (G.Value, error) {
	x, err := dense("subrows", vals[0])
	if err != nil {
		return nil, err
	}
	r, err := dense("subrows", vals[1])
	if err != nil {
		return nil, err
	}
	if r.Dtype() != x.Dtype() || r.Shape().TotalSize() != x.Shape()[0] {
		return nil, fmt.Errorf("graph: subrows: shapes %v and %v", x.Shape(), r.Shape())
	}
	out := op.out.get(x.Dtype(), x.Shape()...)
	switch xd := x.Data().(type) {
	case []float32:
		subRows(out.Data().([]float32), xd, r.Data().([]float32))
	case []float64:
		subRows(out.Data().([]float64), xd, r.Data().([]float64))
	}
	return out, nil
}

func subRows[T float32 | float64](out, x, r []T) {
	row := len(x) / len(r)
	parallel(len(r), func(_, lo, hi int) {
		for n := lo; n < hi; n++ {
			o, in, v := out[n*row:(n+1)*row], x[n*row:(n+1)*row], r[n]
			for i := range in {
				o[i] = in[i] - v
			}
		}
	})
}

// Exp adds to x's graph a node computing exp(x) elementwise: in float64 for
// float64 x, with the vectorised Cephes exp (relative error below 2e-7,
// 0 below −87.3) for float32 x. Gorgonia's own float32 Exp is off by up to
// ~1e-5 relative for |x| > 30.
func Exp(x *G.Node) (*G.Node, error) {
	n, err := G.ApplyOp(expOp{opBase: newBase("Exp/%d", x.Shape().Dims()), dims: x.Shape().Dims()}, x)
	if err != nil {
		return nil, fmt.Errorf("graph: exp: %w", err)
	}
	return n, nil
}

// chunk is the unit of work the elementwise ops hand to a goroutine.
const chunk = 1 << 14

type expOp struct {
	opBase
	dims int
}

func (op expOp) Arity() int { return 1 }

func (op expOp) Type() hm.Type {
	t := G.TensorType{Dims: op.dims, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}

func (op expOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("graph: exp: want a shape, got %T", in[0])
	}
	return s.Clone(), nil
}

func (op expOp) Do(vals ...G.Value) (G.Value, error) {
	x, err := dense("exp", vals[0])
	if err != nil {
		return nil, err
	}
	out := op.out.get(x.Dtype(), x.Shape()...)
	switch xd := x.Data().(type) {
	case []float32:
		o := out.Data().([]float32)
		parallel((len(xd)+chunk-1)/chunk, func(_, lo, hi int) {
			vecmath.Exp(o[lo*chunk:min(hi*chunk, len(o))], xd[lo*chunk:min(hi*chunk, len(xd))])
		})
	case []float64:
		o := out.Data().([]float64)
		for i, v := range xd {
			o[i] = math.Exp(v)
		}
	}
	return out, nil
}

// NegHalfSqNorm adds to w's graph a node computing −½‖w_k‖² for each k of w
// (K,…), summed in float64: the bias that turns a convolution with θ into
// the log joint of the Gaussian mixture.
func NegHalfSqNorm(w *G.Node) (*G.Node, error) {
	d := w.Shape().Dims()
	if d < 2 {
		return nil, fmt.Errorf("graph: neghalfsqnorm: shape %v, want (K,…)", w.Shape())
	}
	n, err := G.ApplyOp(negHalfSqNormOp{opBase: newBase("NegHalfSqNorm/%d", d), dims: d}, w)
	if err != nil {
		return nil, fmt.Errorf("graph: neghalfsqnorm: %w", err)
	}
	return n, nil
}

type negHalfSqNormOp struct {
	opBase
	dims int
}

func (op negHalfSqNormOp) Arity() int { return 1 }

func (op negHalfSqNormOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: op.dims, Of: a}, G.TensorType{Dims: 1, Of: a})
}

func (op negHalfSqNormOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("graph: neghalfsqnorm: want a shape, got %T", in[0])
	}
	return tensor.Shape{s[0]}, nil
}

func (op negHalfSqNormOp) Do(vals ...G.Value) (G.Value, error) {
	w, err := dense("neghalfsqnorm", vals[0])
	if err != nil {
		return nil, err
	}
	k := w.Shape()[0]
	out := op.out.get(w.Dtype(), k)
	switch wd := w.Data().(type) {
	case []float32:
		negHalfSqNorm(out.Data().([]float32), wd)
	case []float64:
		negHalfSqNorm(out.Data().([]float64), wd)
	}
	return out, nil
}

func negHalfSqNorm[T float32 | float64](out, w []T) {
	row := len(w) / len(out)
	for k := range out {
		var s float64
		for _, v := range w[k*row : (k+1)*row] {
			s += float64(v) * float64(v)
		}
		out[k] = T(-s / 2)
	}
}
