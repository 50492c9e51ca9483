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
// must hold every parameter) and the op's own output buffer.
//
// The ops never overwrite their inputs and reuse their output buffer from one
// run to the next, so a batch costs no large allocation; a value read from a
// node is therefore valid until the next run of its program.
type opBase struct {
	name  string
	label string // what String shows, when it differs from name
	out   *outBuffer
}

func newBase(format string, args ...any) opBase {
	return opBase{name: fmt.Sprintf(format, args...), out: new(outBuffer)}
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

// mapToMap gives an op of one 4-D input and an output of the same shape
// (a map to a map) its Arity, Type and InferShape.
type mapToMap struct{ opBase }

func (mapToMap) Arity() int { return 1 }

func (mapToMap) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}

func (op mapToMap) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok || s.Dims() != 4 {
		return nil, fmt.Errorf("graph: %s: want a 4-D shape, got %v", op, in[0])
	}
	return s.Clone(), nil
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
