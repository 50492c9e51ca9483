package graph

import (
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"calm/gemm"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Fast is an op set whose convolutions never build the whole batch's patch
// matrix: each image's patches (C·w·w × Uh·Uw, a few hundred KB) are
// gathered from a zero-padded copy of the image straight into the panel
// layout of package gemm's AVX2 kernel, in a per-worker buffer that stays
// in cache, images spread over GOMAXPROCS workers. The ops own and reuse
// their output buffers. It computes the same functions as Stock.
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

// patchIndex holds, for one layer shape, where each patch element and each
// position sit in a zero-padded image (C × Hp × Wp, row-major): element
// d = (c,i,j) of the patch at position u = (y,x) is pixel elem[d] + pos[u].
// With it, building either patch matrix is one gather with no bounds logic.
type patchIndex struct {
	c, h, w, kh, kw, pad int
	hp, wp               int
	elem, pos            []int
}

func newPatchIndex(c, h, w, kh, kw, pad int) *patchIndex {
	ix := &patchIndex{c: c, h: h, w: w, kh: kh, kw: kw, pad: pad, hp: h + 2*pad, wp: w + 2*pad}
	for ci := 0; ci < c; ci++ {
		for i := 0; i < kh; i++ {
			for j := 0; j < kw; j++ {
				ix.elem = append(ix.elem, (ci*ix.hp+i)*ix.wp+j)
			}
		}
	}
	for y := 0; y < ix.hp-kh+1; y++ {
		for x := 0; x < ix.wp-kw+1; x++ {
			ix.pos = append(ix.pos, y*ix.wp+x)
		}
	}
	return ix
}

func (ix *patchIndex) matches(c, h, w, kh, kw, pad int) bool {
	return ix != nil && ix.c == c && ix.h == h && ix.w == w && ix.kh == kh && ix.kw == kw && ix.pad == pad
}

// padImage copies image x (c,h,w) into dst (c,hp,wp) inside a zero border.
func (ix *patchIndex) padImage(dst, x []float32) {
	clear(dst)
	for ci := 0; ci < ix.c; ci++ {
		for y := 0; y < ix.h; y++ {
			copy(dst[(ci*ix.hp+y+ix.pad)*ix.wp+ix.pad:][:ix.w], x[(ci*ix.h+y)*ix.w:][:ix.w])
		}
	}
}

// gatherPanels writes, in gemm.PackedB layout, the matrix whose element
// (r, l) is img[rows[r] + lanes[l]]: len(rows) rows, len(lanes) columns in
// panels of gemm.PanelWidth, the last panel's missing columns zero.
//
// It is a fifth of the E-step, so the loads skip Go's bounds checks: the
// largest index is checked once, up front, instead.
func gatherPanels(panels, img []float32, rows, lanes []int) {
	const pw = gemm.PanelWidth
	if len(rows) == 0 || len(lanes) == 0 {
		return
	}
	if slices.Max(rows)+slices.Max(lanes) >= len(img) || slices.Min(rows)+slices.Min(lanes) < 0 {
		panic("graph: gather index out of range")
	}
	base := unsafe.Pointer(unsafe.SliceData(img))
	at := func(i int) float32 { return *(*float32)(unsafe.Add(base, 4*i)) }
	k := len(rows)
	for p := 0; p*pw < len(lanes); p++ {
		ls := lanes[p*pw : min(len(lanes), p*pw+pw)]
		out := panels[p*pw*k : (p+1)*pw*k]
		for r, b := range rows {
			dst := out[r*pw : r*pw+pw]
			if len(ls) == pw {
				dst = dst[:pw:pw]
				for q := 0; q < pw; q++ {
					dst[q] = at(b + ls[q])
				}
				continue
			}
			for q, l := range ls {
				dst[q] = at(b + l)
			}
			clear(dst[len(ls):])
		}
	}
}

// scratch is what an op keeps between runs besides its output: one set of
// buffers per worker, grown on demand, and the buffers the workers share.
type scratch struct {
	mu      sync.Mutex
	workers []*workerScratch
	ix      *patchIndex

	theta   gemm.PackedA // the conv's kernels, packed once per batch
	partial []float32    // the filter's per-shard sums
}

// workerScratch is one worker's buffers.
type workerScratch struct {
	img []float32 // the zero-padded image
	pa  gemm.PackedA
	pb  gemm.PackedB
	ws  gemm.Workspace
}

// worker returns the buffers of worker i, with img sized for n values.
func (s *scratch) worker(i, n int) *workerScratch {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.workers) <= i {
		s.workers = append(s.workers, new(workerScratch))
	}
	w := s.workers[i]
	if cap(w.img) < n {
		w.img = make([]float32, n)
	}
	w.img = w.img[:n]
	return w
}

// index returns the patch index of the shape, built on first use.
func (s *scratch) index(c, h, w, kh, kw, pad int) *patchIndex {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ix.matches(c, h, w, kh, kw, pad) {
		s.ix = newPatchIndex(c, h, w, kh, kw, pad)
	}
	return s.ix
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
	// θ is packed once per batch and shared by the workers.
	sc.theta.Pack(k, d, 1, gemm.Matrix{Data: w, Stride: d})
	ix := sc.index(c, h, wd, kh, kw, op.pad)
	parallel(n, func(worker, lo, hi int) {
		b := sc.worker(worker, c*ix.hp*ix.wp)
		for i := lo; i < hi; i++ {
			// The patch matrix (C·kh·kw × Uh·Uw), straight into panels.
			ix.padImage(b.img, x[i*c*h*wd:(i+1)*c*h*wd])
			gatherPanels(b.pb.Reset(d, u), b.img, ix.elem, ix.pos)
			dst := o[i*k*u : (i+1)*k*u]
			for kk := 0; kk < k; kk++ {
				row := dst[kk*u : (kk+1)*u]
				for j := range row {
					row[j] = bias[kk]
				}
			}
			gemm.MulPacked(&sc.theta, &b.pb, dst, u, &b.ws)
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
	// Shard s sums S = Σ_i f_i (K×U) · windows_i (U×D) over its images.
	if cap(sc.partial) < shards*k*d {
		sc.partial = make([]float32, shards*k*d)
	}
	partial := sc.partial[:shards*k*d]
	clear(partial)
	ix := sc.index(c, h, wd, kh, kw, op.pad)
	parallel(shards, func(worker, lo, hi int) {
		b := sc.worker(worker, c*ix.hp*ix.wp)
		for s := lo; s < hi; s++ {
			sum := partial[s*k*d : (s+1)*k*d]
			for i := s * n / shards; i < (s+1)*n/shards; i++ {
				b.pa.Pack(k, u, 1, gemm.Matrix{Data: f[i*k*u : (i+1)*k*u], Stride: u})
				// The transposed patch matrix (Uh·Uw × C·kh·kw), into panels.
				ix.padImage(b.img, x[i*c*h*wd:(i+1)*c*h*wd])
				gatherPanels(b.pb.Reset(u, d), b.img, ix.pos, ix.elem)
				gemm.MulPacked(&b.pa, &b.pb, sum, d, &b.ws)
			}
		}
	})
	out := op.out.get(tensor.Float32, outShape...)
	o := out.Data().([]float32)
	for j := range o {
		var s float64
		for sh := 0; sh < shards; sh++ {
			s += float64(partial[sh*k*d+j])
		}
		o[j] = float32(s)
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
