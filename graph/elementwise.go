package graph

import (
	"fmt"
	"math"

	"calm/internal/vecmath"

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
	return apply("subrows", subRowsOp{sameShape{newBase(sig(xs.Dims(), xs.Dims(), 1), "SubRows/%d", xs.Dims())}}, x, r)
}

type subRowsOp struct{ sameShape }

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
	return apply("exp", expOp{sameShape{newBase(sig(x.Shape().Dims(), x.Shape().Dims()), "Exp/%d", x.Shape().Dims())}}, x)
}

// chunk is the unit of work the elementwise ops hand to a goroutine.
const chunk = 1 << 14

type expOp struct{ sameShape }

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

// Sqrt adds to x's graph a node computing √x elementwise (NaN for x < 0),
// in x's precision: the square root of a posterior that a root transform
// passes to the next layer.
func Sqrt(x *G.Node) (*G.Node, error) {
	return apply("sqrt", sqrtOp{sameShape{newBase(sig(x.Shape().Dims(), x.Shape().Dims()), "Sqrt/%d", x.Shape().Dims())}}, x)
}

type sqrtOp struct{ sameShape }

func (op sqrtOp) Do(vals ...G.Value) (G.Value, error) {
	x, err := dense("sqrt", vals[0])
	if err != nil {
		return nil, err
	}
	out := op.out.get(x.Dtype(), x.Shape()...)
	switch xd := x.Data().(type) {
	case []float32:
		sqrt(out.Data().([]float32), xd)
	case []float64:
		sqrt(out.Data().([]float64), xd)
	default:
		return nil, fmt.Errorf("graph: sqrt: %v values, want float32 or float64", x.Dtype())
	}
	return out, nil
}

func sqrt[T float32 | float64](out, x []T) {
	parallel((len(x)+chunk-1)/chunk, func(_, lo, hi int) {
		for i := lo * chunk; i < min(hi*chunk, len(x)); i++ {
			out[i] = T(math.Sqrt(float64(x[i])))
		}
	})
}

// KernelBias adds to θ's graph a node computing, for kernels θ (K,…), log
// mixing weights logPrior (K) and an inverse temperature β (1),
//
//	bias[k] = −½β‖θ_k‖² + logPrior[k]
//
// with the squares summed in float64: the bias that turns a convolution
// with βθ into the log joint of the Gaussian mixture of variance 1/β
// (up to terms that do not depend on the kernel). With logPrior zero the
// mixture's weights are uniform, and with β = 1 the variance is 1, as in
// the paper.
func KernelBias(theta, logPrior, beta *G.Node) (*G.Node, error) {
	ts, ps, bs := theta.Shape(), logPrior.Shape(), beta.Shape()
	if ts.Dims() < 2 || ps.Dims() != 1 || ps[0] != ts[0] || bs.Dims() != 1 || bs[0] != 1 {
		return nil, fmt.Errorf("graph: kernel bias: shapes %v, %v and %v, want (K,…), (K) and (1)", ts, ps, bs)
	}
	if err := checkFloat32("kernel bias", theta, logPrior, beta); err != nil {
		return nil, err
	}
	return apply("kernel bias", kernelBiasOp{perKernel{newBase(sig(1, ts.Dims(), 1, 1), "KernelBias/%d", ts.Dims())}}, theta, logPrior, beta)
}

// perKernel gives an op whose output holds one value for each kernel, the
// first axis of its first input (K,…), its InferShape.
type perKernel struct{ opBase }

func (op perKernel) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0][0]}, nil
}

type kernelBiasOp struct{ perKernel }

func (op kernelBiasOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, err := op.inputs(vals)
	if err != nil {
		return nil, err
	}
	w, prior, beta, k := in[0], in[1], in[2], shapes[0][0]
	if len(prior) != k || len(beta) != 1 {
		return nil, fmt.Errorf("graph: kernel bias: %d log weights and %d temperatures for %d kernels", len(prior), len(beta), k)
	}
	out := op.out.get(tensor.Float32, k)
	o := out.Data().([]float32)
	row := len(w) / k
	for kk := range o {
		var s float64
		for _, v := range w[kk*row : (kk+1)*row] {
			s += float64(v) * float64(v)
		}
		o[kk] = float32(-float64(beta[0])*s/2 + float64(prior[kk]))
	}
	return out, nil
}

// Scale adds to x's graph a node computing s·x elementwise, for x of any
// shape and a scale s of shape (1): the kernels βθ of a log joint at
// inverse temperature β (KernelBias).
func Scale(x, s *G.Node) (*G.Node, error) {
	xs, ss := x.Shape(), s.Shape()
	if ss.Dims() != 1 || ss[0] != 1 || xs.Dims() < 1 {
		return nil, fmt.Errorf("graph: scale: shapes %v and %v, want (…) and (1)", xs, ss)
	}
	if err := checkFloat32("scale", x, s); err != nil {
		return nil, err
	}
	return apply("scale", scaleOp{sameShape{newBase(sig(xs.Dims(), xs.Dims(), 1), "Scale/%d", xs.Dims())}}, x, s)
}

type scaleOp struct{ sameShape }

func (op scaleOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, err := op.inputs(vals)
	if err != nil {
		return nil, err
	}
	x, s := in[0], in[1]
	if len(s) != 1 {
		return nil, fmt.Errorf("graph: scale: %d scales, want 1", len(s))
	}
	out := op.out.get(tensor.Float32, shapes[0]...)
	o := out.Data().([]float32)
	for i, v := range x {
		o[i] = s[0] * v
	}
	return out, nil
}
