package graph

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/tensor"
)

// Fast is an op set whose convolutions never build the whole batch's patch
// matrix: each image's patches (C·w·w × Uh·Uw, a few hundred KB) are
// gathered into a per-worker buffer that stays in cache and multiplied with
// the kernels there, images spread over GOMAXPROCS workers. The ops own and
// reuse their output buffers. It computes the same functions as Stock.
//
// The M-step convolution sums images in a fixed number of shards, whatever
// the number of workers, so its result does not depend on GOMAXPROCS.
type Fast struct{}

// Name returns "fast".
func (Fast) Name() string { return "fast" }

// Conv2d implements Ops.
func (Fast) Conv2d(x, w, bias *G.Node, pad int) (*G.Node, error) {
	if err := checkConv(x, w, bias); err != nil {
		return nil, err
	}
	op := fastConvOp{opBase: newBase("FastConv2d/p%d", pad), pad: pad}
	n, err := G.ApplyOp(op, x, w, bias)
	if err != nil {
		return nil, fmt.Errorf("graph: fast conv2d: %w", err)
	}
	return n, nil
}

// Conv2dFilter implements Ops.
func (Fast) Conv2dFilter(x, f *G.Node, pad int) (*G.Node, error) {
	if err := checkFilter(x, f, pad); err != nil {
		return nil, err
	}
	op := fastFilterOp{opBase: newBase("FastConv2dFilter/p%d", pad), pad: pad}
	n, err := G.ApplyOp(op, x, f)
	if err != nil {
		return nil, fmt.Errorf("graph: fast conv2d filter: %w", err)
	}
	return n, nil
}

// LogSumExp implements Ops with this package's LogSumExp.
func (Fast) LogSumExp(x *G.Node, axes ...int) (*G.Node, error) { return LogSumExp(x, axes...) }

// im2col writes the patches of one padded image x (c,h,w) for kernels of
// kh×kw into p, laid out (c·kh·kw) × (uh·uw): row (ci,i,j) holds pixel
// (y+i, x+j) of channel ci for every position (y,x).
func im2col(p, x []float32, c, h, w, kh, kw, pad int) {
	uh, uw := h+2*pad-kh+1, w+2*pad-kw+1
	d := 0
	for ci := 0; ci < c; ci++ {
		plane := x[ci*h*w : (ci+1)*h*w]
		for i := 0; i < kh; i++ {
			for j := 0; j < kw; j++ {
				row := p[d*uh*uw : (d+1)*uh*uw]
				d++
				// Columns x with 0 ≤ x+j−pad < w read the image.
				lo, hi := max(0, pad-j), min(uw, w+pad-j)
				for y := 0; y < uh; y++ {
					dst := row[y*uw : (y+1)*uw]
					sy := y + i - pad
					if sy < 0 || sy >= h || lo >= hi {
						clear(dst)
						continue
					}
					clear(dst[:lo])
					copy(dst[lo:hi], plane[sy*w+lo+j-pad:])
					clear(dst[hi:])
				}
			}
		}
	}
}

// parallel runs f(lo, hi) on GOMAXPROCS contiguous parts of [0, n).
func parallel(n int, f func(worker, lo, hi int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
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

// scratch is a per-worker set of buffers, grown on demand and kept by the op.
type scratch struct {
	mu   sync.Mutex
	bufs [][]float32
}

func (s *scratch) get(worker, n int) []float32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.bufs) <= worker {
		s.bufs = append(s.bufs, nil)
	}
	if cap(s.bufs[worker]) < n {
		s.bufs[worker] = make([]float32, n)
	}
	return s.bufs[worker][:n]
}

type fastConvOp struct {
	opBase
	pad int
}

func (op fastConvOp) Arity() int { return 3 }

func (op fastConvOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t4 := G.TensorType{Dims: 4, Of: a}
	return hm.NewFnType(t4, t4, G.TensorType{Dims: 1, Of: a}, t4)
}

func (op fastConvOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	xs, ok1 := in[0].(tensor.Shape)
	ws, ok2 := in[1].(tensor.Shape)
	if !ok1 || !ok2 || xs.Dims() != 4 || ws.Dims() != 4 {
		return nil, fmt.Errorf("graph: fast conv2d: want 4-D shapes, got %v and %v", in[0], in[1])
	}
	return tensor.Shape{xs[0], ws[0], xs[2] + 2*op.pad - ws[2] + 1, xs[3] + 2*op.pad - ws[3] + 1}, nil
}


func (op fastConvOp) Do(vals ...G.Value) (G.Value, error) {
	x, xs, err := float32s("fast conv2d", vals[0])
	if err != nil {
		return nil, err
	}
	w, ws, err := float32s("fast conv2d", vals[1])
	if err != nil {
		return nil, err
	}
	bias, _, err := float32s("fast conv2d", vals[2])
	if err != nil {
		return nil, err
	}
	outShape, err := op.InferShape(xs, ws)
	if err != nil {
		return nil, err
	}
	n, c, h, wd := xs[0], xs[1], xs[2], xs[3]
	k, kh, kw := ws[0], ws[2], ws[3]
	uh, uw := outShape[2], outShape[3]
	if ws[1] != c || len(bias) != k {
		return nil, fmt.Errorf("graph: fast conv2d: shapes %v, %v, (%d)", xs, ws, len(bias))
	}
	out := op.out.get(tensor.Float32, outShape...)
	o := out.Data().([]float32)
	d, u := c*kh*kw, uh*uw
	sc := op.out.scratch()
	parallel(n, func(worker, lo, hi int) {
		p := sc.get(worker, d*u)
		for i := lo; i < hi; i++ {
			im2col(p, x[i*c*h*wd:(i+1)*c*h*wd], c, h, wd, kh, kw, op.pad)
			dst := o[i*k*u : (i+1)*k*u]
			for kk := 0; kk < k; kk++ {
				row := dst[kk*u : (kk+1)*u]
				for j := range row {
					row[j] = bias[kk]
				}
			}
			gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, k, u, d, 1, w, d, p, u, 1, dst, u)
		}
	})
	return out, nil
}

type fastFilterOp struct {
	opBase
	pad int
}

// filterShards is the fixed number of partial sums of the M-step
// convolution: results do not depend on the number of workers.
const filterShards = 8

func (op fastFilterOp) Arity() int { return 2 }

func (op fastFilterOp) Type() hm.Type {
	t4 := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t4, t4, t4)
}

func (op fastFilterOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	xs, ok1 := in[0].(tensor.Shape)
	fs, ok2 := in[1].(tensor.Shape)
	if !ok1 || !ok2 || xs.Dims() != 4 || fs.Dims() != 4 {
		return nil, fmt.Errorf("graph: fast conv2d filter: want 4-D shapes, got %v and %v", in[0], in[1])
	}
	return tensor.Shape{fs[1], xs[1], xs[2] + 2*op.pad - fs[2] + 1, xs[3] + 2*op.pad - fs[3] + 1}, nil
}

func (op fastFilterOp) Do(vals ...G.Value) (G.Value, error) {
	x, xs, err := float32s("fast conv2d filter", vals[0])
	if err != nil {
		return nil, err
	}
	f, fs, err := float32s("fast conv2d filter", vals[1])
	if err != nil {
		return nil, err
	}
	outShape, err := op.InferShape(xs, fs)
	if err != nil {
		return nil, err
	}
	n, c, h, wd := xs[0], xs[1], xs[2], xs[3]
	k, uh, uw := fs[1], fs[2], fs[3]
	kh, kw := outShape[2], outShape[3]
	if fs[0] != n {
		return nil, fmt.Errorf("graph: fast conv2d filter: %d images, %d maps", n, fs[0])
	}
	d, u := c*kh*kw, uh*uw
	shards := min(n, filterShards)
	sc := op.out.scratch()
	partial := sc.get(filterShards+1, shards*k*d) // one K×D sum per shard
	clear(partial)
	parallel(shards, func(worker, lo, hi int) {
		p := sc.get(worker, d*u)
		for s := lo; s < hi; s++ {
			sum := partial[s*k*d : (s+1)*k*d]
			for i := s * n / shards; i < (s+1)*n/shards; i++ {
				im2col(p, x[i*c*h*wd:(i+1)*c*h*wd], c, h, wd, kh, kw, op.pad)
				gonum.Implementation{}.Sgemm(blas.NoTrans, blas.Trans, k, d, u, 1, f[i*k*u:(i+1)*k*u], u, p, u, 1, sum, d)
			}
		}
	})
	out := op.out.get(tensor.Float32, outShape...)
	o := out.Data().([]float32)
	for i := range o {
		var s float64
		for sh := 0; sh < shards; sh++ {
			s += float64(partial[sh*k*d+i])
		}
		o[i] = float32(s)
	}
	return out, nil
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
