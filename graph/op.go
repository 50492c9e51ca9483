package graph

import (
	"fmt"
	"hash"
	"hash/fnv"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opBase carries what every op of this package shares: a name that goes into
// the hash (Gorgonia hash-conses nodes by op hash and children, so the name
// must hold every parameter), the op's own output buffer, and its
// signature, from which its Arity and Type follow.
//
// The ops never overwrite their inputs and reuse their output buffer from one
// run to the next, so a batch costs no large allocation; a value read from a
// node is therefore valid until the next run of its program.
type opBase struct {
	name  string
	label string // what String shows, when it differs from name
	out   *outBuffer
	sig   signature
}

// A signature is the number of dimensions of each input of an op and of
// its output (0: a scalar), all of one element type. An array, not a
// slice, keeps op values comparable.
type signature struct {
	in  [maxInputs]int
	n   int // inputs
	out int
}

// maxInputs is the most inputs an op of this package takes.
const maxInputs = 3

// sig returns the signature of an op with an output of out dimensions and
// inputs of the given ones.
func sig(out int, in ...int) signature {
	if len(in) > maxInputs {
		panic(fmt.Sprintf("graph: an op of %d inputs; signature holds %d", len(in), maxInputs))
	}
	s := signature{n: len(in), out: out}
	copy(s.in[:], in)
	return s
}

func newBase(s signature, format string, args ...any) opBase {
	return opBase{name: fmt.Sprintf(format, args...), out: new(outBuffer), sig: s}
}

func (op opBase) Arity() int { return op.sig.n }

func (op opBase) Type() hm.Type {
	a := hm.TypeVariable('a')
	var ts []hm.Type
	for _, d := range op.sig.in[:op.sig.n] {
		ts = append(ts, G.TensorType{Dims: d, Of: a})
	}
	if op.sig.out == 0 {
		return hm.NewFnType(append(ts, a)...)
	}
	return hm.NewFnType(append(ts, G.TensorType{Dims: op.sig.out, Of: a})...)
}

// shapes returns the shapes of an op's inputs, checked against its
// signature: what InferShape works from.
func (op opBase) shapes(in []G.DimSizer) ([]tensor.Shape, error) {
	if len(in) != op.sig.n {
		return nil, fmt.Errorf("graph: %s: %d inputs, want %d", op, len(in), op.sig.n)
	}
	out := make([]tensor.Shape, len(in))
	for i, d := range in {
		s, ok := d.(tensor.Shape)
		if !ok || s.Dims() != op.sig.in[i] {
			return nil, fmt.Errorf("graph: %s: input %d has shape %v, want %d dimensions", op, i+1, d, op.sig.in[i])
		}
		out[i] = s
	}
	return out, nil
}

func (op opBase) ReturnsPtr() bool      { return false }
func (op opBase) CallsExtern() bool     { return false }
func (op opBase) OverwritesInput() int  { return -1 }
func (op opBase) WriteHash(h hash.Hash) { fmt.Fprint(h, "calm.", op.name) }
func (op opBase) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op opBase) String() string {
	if op.label != "" {
		return op.label
	}
	return op.name
}

// sameShape gives an op whose output has the shape of its first input its
// InferShape.
type sameShape struct{ opBase }

func (op sameShape) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}

// inputs returns the data and shape of each value an op's Do is given,
// which must all be float32 tensors.
func (op opBase) inputs(vals []G.Value) ([][]float32, []tensor.Shape, error) {
	data := make([][]float32, len(vals))
	shapes := make([]tensor.Shape, len(vals))
	for i, v := range vals {
		var err error
		if data[i], shapes[i], err = float32s(op.String(), v); err != nil {
			return nil, nil, err
		}
	}
	return data, shapes, nil
}

// prepare reads the float32 inputs of an op's Do and returns them with
// their shapes and the op's output buffer, of the shape infer (the op's
// InferShape) gives.
func (op opBase) prepare(vals []G.Value, infer func(...G.DimSizer) (tensor.Shape, error)) (in [][]float32, shapes []tensor.Shape, out *tensor.Dense, err error) {
	if in, shapes, err = op.inputs(vals); err != nil {
		return nil, nil, nil, err
	}
	ds := make([]G.DimSizer, len(shapes))
	for i, s := range shapes {
		ds[i] = s
	}
	outShape, err := infer(ds...)
	if err != nil {
		return nil, nil, nil, err
	}
	return in, shapes, op.out.get(tensor.Float32, outShape...), nil
}

// apply adds op to the graph of its inputs, naming what it is in an error.
func apply(what string, op G.Op, in ...*G.Node) (*G.Node, error) {
	n, err := G.ApplyOp(op, in...)
	if err != nil {
		return nil, fmt.Errorf("graph: %s: %w", what, err)
	}
	return n, nil
}

// outBuffer is an op's output tensor and scratch space, kept between runs.
type outBuffer struct {
	t  *tensor.Dense
	sc scratch
}

func (b *outBuffer) scratch() *scratch { return &b.sc }

// get returns a tensor of the given shape and type, reusing the previous
// one when it matches. Its contents are not cleared.
func (b *outBuffer) get(dt tensor.Dtype, shape ...int) *tensor.Dense {
	if b.t != nil && b.t.Dtype() == dt && b.t.Shape().Eq(tensor.Shape(shape)) {
		return b.t
	}
	b.t = tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	return b.t
}

// dense returns v as a *tensor.Dense of float32 or float64.
func dense(op string, v G.Value) (*tensor.Dense, error) {
	t, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("graph: %s: want a *tensor.Dense, got %T", op, v)
	}
	if dt := t.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("graph: %s: unsupported type %v", op, dt)
	}
	return t, nil
}

// parallel runs f(worker, lo, hi) on GOMAXPROCS contiguous parts of [0, n),
// worker numbering the parts from 0; one part runs without a goroutine.
func parallel(n int, f func(worker, lo, hi int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		f(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			f(wk, wk*n/workers, (wk+1)*n/workers)
		}(wk)
	}
	wg.Wait()
}

// float32s returns v's float32 data and shape.
func float32s(op string, v G.Value) ([]float32, tensor.Shape, error) {
	t, ok := v.(*tensor.Dense)
	if !ok {
		return nil, nil, fmt.Errorf("graph: %s: want a *tensor.Dense, got %T", op, v)
	}
	d, ok := t.Data().([]float32)
	if !ok {
		return nil, nil, fmt.Errorf("graph: %s: want float32, got %v", op, t.Dtype())
	}
	return d, t.Shape(), nil
}
