package graph

import (
	"fmt"
	"math"
	"slices"

	"calm/internal/vecmath"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// logSumExpOp computes log Σ exp(x) over a set of axes. It subtracts the
// maximum of each reduced group before exponentiating and accumulates in
// float64, so it is exact to rounding for inputs of any size (±1000
// included), gives −Inf for a group of −Inf and propagates NaN.
//
// Gorgonia's own LogSumExp (v0.9.18) returns log(Σexp(x−m)+m) and must not be
// used. This op has no gradient: EM needs none.
type logSumExpOp struct {
	opBase
	along []int // sorted, distinct
}

// LogSumExp adds to x's graph a node computing log Σ exp(x) over the given
// axes of x, with float64 accumulation. No axes means all of them (the
// result is then a scalar). The result keeps x's type.
func LogSumExp(x *G.Node, axes ...int) (*G.Node, error) {
	d := x.Shape().Dims()
	if d == 0 {
		return nil, fmt.Errorf("graph: logsumexp of a scalar")
	}
	if len(axes) == 0 {
		for i := 0; i < d; i++ {
			axes = append(axes, i)
		}
	}
	along := slices.Clone(axes)
	slices.Sort(along)
	along = slices.Compact(along)
	for _, a := range along {
		if a < 0 || a >= d {
			return nil, fmt.Errorf("graph: logsumexp: axis %d out of range for shape %v", a, x.Shape())
		}
	}
	op := logSumExpOp{opBase: newBase(sig(d-len(along), d), "LogSumExp%v/%d", along, d), along: along}
	return apply("logsumexp", op, x)
}

func (op logSumExpOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	shapes, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	s := shapes[0]
	var out tensor.Shape
	for i, n := range s {
		if !slices.Contains(op.along, i) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return tensor.ScalarShape(), nil
	}
	return out, nil
}

func (op logSumExpOp) Do(vals ...G.Value) (G.Value, error) {
	t, err := dense("logsumexp", vals[0])
	if err != nil {
		return nil, err
	}
	shape := t.Shape()
	if shape.Dims() != op.sig.in[0] {
		return nil, fmt.Errorf("graph: logsumexp: got shape %v, want %d dims", shape, op.sig.in[0])
	}
	outShape, err := op.InferShape(shape)
	if err != nil {
		return nil, err
	}
	if outShape.IsScalar() {
		switch x := t.Data().(type) {
		case []float32:
			var out [1]float32
			logSumExp(out[:], x, shape, op.along)
			return G.NewF32(out[0]), nil
		case []float64:
			var out [1]float64
			logSumExp(out[:], x, shape, op.along)
			return G.NewF64(out[0]), nil
		}
	}
	out := op.out.get(t.Dtype(), outShape...)
	switch x := t.Data().(type) {
	case []float32:
		logSumExp(out.Data().([]float32), x, shape, op.along)
	case []float64:
		logSumExp(out.Data().([]float64), x, shape, op.along)
	}
	return out, nil
}

// logSumExp writes into out the log-sum-exp of x (of the given shape) over
// the sorted axes along; out has the shape of the kept axes.
//
// When the last axes are reduced (as in every reduction of the E-step), the
// contiguous rows they form are reduced first, in parallel and with the
// vectorised exp; the remaining axes, if any, are then reduced over the
// rows' results, since logsumexp over a union is logsumexp of the parts'.
func logSumExp[T float32 | float64](out []T, x []T, shape tensor.Shape, along []int) {
	d := len(shape)
	r := 0
	for r < d && slices.Contains(along, d-1-r) {
		r++
	}
	if r == 0 {
		reduceLSE(out, x, shape, along)
		return
	}
	rowLen := 1
	for _, n := range shape[d-r:] {
		rowLen *= n
	}
	rest := along[:len(along)-r]
	if len(rest) == 0 {
		rowsLSE(out, x, rowLen)
		return
	}
	rows := make([]float64, len(x)/rowLen)
	rowsLSE(rows, x, rowLen)
	reduceLSE(out, rows, shape[:d-r], rest)
}

// rowsLSE sets out[i] to the log-sum-exp of row i of x, rows of rowLen.
func rowsLSE[In float32 | float64, Out float32 | float64](out []Out, x []In, rowLen int) {
	parallel(len(out), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i] = Out(rowLSE(x[i*rowLen : (i+1)*rowLen]))
		}
	})
}

// rowLSE returns the log-sum-exp of one row: float32 rows go through the
// vector Max and SumExp, float64 rows through math.Exp.
func rowLSE[T float32 | float64](row []T) float64 {
	var m, sum float64
	if r32, ok := any(row).([]float32); ok {
		m32 := vecmath.Max(r32)
		if m = float64(m32); math.IsInf(m, 0) || m != m {
			return m // all −Inf gives −Inf; +Inf gives +Inf; NaN stays
		}
		sum = vecmath.SumExp(r32, m32)
	} else {
		m = math.Inf(-1)
		for _, v := range row {
			if v := float64(v); v > m || v != v {
				m = v
			}
		}
		if math.IsInf(m, 0) || m != m {
			return m
		}
		for _, v := range row {
			sum += math.Exp(float64(v) - m)
		}
	}
	return m + math.Log(sum)
}

// reduceLSE is the general case: any axes, walked in index order, with
// float64 exp.
func reduceLSE[In float32 | float64, Out float32 | float64](out []Out, x []In, shape tensor.Shape, along []int) {
	d := len(shape)
	// ostride[a] is how far one step along input axis a moves in out.
	ostride := make([]int, d)
	s := 1
	for a := d - 1; a >= 0; a-- {
		if !slices.Contains(along, a) {
			ostride[a] = s
			s *= shape[a]
		}
	}
	maxs := make([]float64, len(out))
	sums := make([]float64, len(out))
	for i := range maxs {
		maxs[i] = math.Inf(-1)
	}
	// visit calls f with each innermost row of x and the index in out of its
	// first element.
	visit := func(f func(o, step int, row []In)) {
		inner := shape[d-1]
		idx := make([]int, d)
		o := 0
		for start := 0; start < len(x); start += inner {
			f(o, ostride[d-1], x[start:start+inner])
			for a := d - 2; a >= 0; a-- {
				idx[a]++
				o += ostride[a]
				if idx[a] < shape[a] {
					break
				}
				o -= idx[a] * ostride[a]
				idx[a] = 0
			}
		}
	}
	visit(func(o, step int, row []In) {
		for _, v := range row {
			if v := float64(v); v > maxs[o] || v != v {
				maxs[o] = v
			}
			o += step
		}
	})
	visit(func(o, step int, row []In) {
		for _, v := range row {
			if m := maxs[o]; !math.IsInf(m, 0) {
				sums[o] += math.Exp(float64(v) - m)
			}
			o += step
		}
	})
	for i, m := range maxs {
		if math.IsInf(m, 0) {
			out[i] = Out(m) // all −Inf gives −Inf; any +Inf gives +Inf
			continue
		}
		out[i] = Out(m + math.Log(sums[i]))
	}
}
