package graph

import (
	"fmt"
	"sync"

	"calm/gemm"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Fast is an op set whose convolutions never build a patch matrix: the
// micro-kernel of package gemm reads each image's patches straight from a
// zero-padded copy of the image through two index tables (positions and
// kernel elements), images spread over GOMAXPROCS workers. The ops own and
// reuse their output buffers. It computes the same functions as Gorgonia.
//
// The E-step convolution computes each image's log joint as positions ×
// kernels, then transposes it into (K, Uh, Uw); the M-step convolution
// computes Sᵀ (elements × kernels) from the posterior transposed. Its sums
// run in float32 over one image's positions and over groups of
// filterFlush images, and in float64 beyond, in a fixed number of shards:
// its result does not depend on GOMAXPROCS.
type Fast struct {
	// MicroKernel is the gemm micro-kernel to run; nil means gemm.Default().
	MicroKernel *gemm.MicroKernel
}

// Name returns "fast", or "fast/" and the micro-kernel's name when one is set.
func (f Fast) Name() string {
	if f.MicroKernel == nil {
		return "fast"
	}
	return "fast/" + f.MicroKernel.Name()
}

func (f Fast) kernel() *gemm.MicroKernel {
	if f.MicroKernel == nil {
		return gemm.Default()
	}
	return f.MicroKernel
}

// Conv2d implements Ops.
func (f Fast) Conv2d(x, w, bias *G.Node, pad int) (*G.Node, error) {
	if err := checkConv(x, w, bias); err != nil {
		return nil, err
	}
	op := fastConvOp{opBase: newBase(sig(4, 4, 4, 1), "FastConv2d/p%d/%s", pad, f.kernel()), pad: pad, kern: f.kernel()}
	return apply("fast conv2d", op, x, w, bias)
}

// Conv2dFilter implements Ops.
func (f Fast) Conv2dFilter(x, fm *G.Node, pad int) (*G.Node, error) {
	if err := checkFilter(x, fm, pad); err != nil {
		return nil, err
	}
	op := fastFilterOp{opBase: newBase(sig(4, 4, 4), "FastConv2dFilter/p%d/%s", pad, f.kernel()), pad: pad, kern: f.kernel()}
	return apply("fast conv2d filter", op, x, fm)
}

// LogSumExp implements Ops with this package's LogSumExp.
func (Fast) LogSumExp(x *G.Node, axes ...int) (*G.Node, error) { return LogSumExp(x, axes...) }

// Pool implements Ops with this package's pooling ops.
func (Fast) Pool(logJoint *G.Node, p Pooling) (*G.Node, error) { return Pool(logJoint, p) }

// LogJointPosterior implements JointPosterior, for both models: the
// convolution op computes each image's posterior right after its log
// joint, while the log joint is in cache, and writes out only the
// posterior; side ops read the log marginal and the log counts off it.
func (f Fast) LogJointPosterior(x, w, bias *G.Node, pad int, m Model) (logMarg, post, logCounts *G.Node, err error) {
	if m != ImageModel && m != PatchModel {
		return nil, nil, nil, fmt.Errorf("graph: fast conv2d posterior: %w: %v", ErrNotFused, m)
	}
	if err := checkConv(x, w, bias); err != nil {
		return nil, nil, nil, err
	}
	state := new(posteriorState)
	op := fastConvOp{opBase: labelled(sig(4, 4, 4, 1), fmt.Sprintf("FastConv2dPosterior/%s/p%d/%s", m, pad, f.kernel()), state), pad: pad, kern: f.kernel(), post: state, model: m}
	if post, err = G.ApplyOp(op, x, w, bias); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: fast conv2d posterior: %w", err)
	}
	if logMarg, logCounts, err = sides(state, post, post.Shape()); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: fast conv2d posterior: %w", err)
	}
	return logMarg, post, logCounts, nil
}

// Posterior implements Ops with one op that makes its passes over each
// image's log joint while it is in cache.
func (Fast) Posterior(logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error) {
	return fusedPosterior(logJoint)
}

// patchIndex holds, for one layer shape, where each patch element and each
// position sit in a zero-padded image (C × Hp × Wp, row-major): element
// d = (c,i,j) of the patch at position u = (y,x) is pixel elem[d] + pos[u].
// With it, either patch matrix is a gemm.Gather of the padded image.
type patchIndex struct {
	c, h, w, kh, kw, pad int
	hp, wp               int
	elem, pos            []int32
}

func newPatchIndex(c, h, w, kh, kw, pad int) *patchIndex {
	ix := &patchIndex{c: c, h: h, w: w, kh: kh, kw: kw, pad: pad, hp: h + 2*pad, wp: w + 2*pad}
	for ci := 0; ci < c; ci++ {
		for i := 0; i < kh; i++ {
			for j := 0; j < kw; j++ {
				ix.elem = append(ix.elem, int32((ci*ix.hp+i)*ix.wp+j))
			}
		}
	}
	for y := 0; y < ix.hp-kh+1; y++ {
		for x := 0; x < ix.wp-kw+1; x++ {
			ix.pos = append(ix.pos, int32(y*ix.wp+x))
		}
	}
	return ix
}

func (ix *patchIndex) matches(c, h, w, kh, kw, pad int) bool {
	return ix != nil && ix.c == c && ix.h == h && ix.w == w && ix.kh == kh && ix.kw == kw && ix.pad == pad
}

// groupPositions returns the positions of group padded images side by
// side (each C × Hp × Wp), as offsets into them: a block of several
// images' patches for logJoint.
func (ix *patchIndex) groupPositions(group int) []int32 {
	imgLen := ix.c * ix.hp * ix.wp
	pos := make([]int32, 0, group*len(ix.pos))
	for g := 0; g < group; g++ {
		for _, off := range ix.pos {
			pos = append(pos, off+int32(g*imgLen))
		}
	}
	return pos
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

// scratch is what an op keeps between runs besides its output: one set of
// buffers per worker, grown on demand, and the buffers the workers share.
type scratch struct {
	mu      sync.Mutex
	workers []*workerScratch
	ix      *patchIndex

	theta  gemm.PackedB // the conv's kernels θᵀ (elements × kernels), packed once per batch
	shards []float64    // the filter's per-shard sums Sᵀ (elements × kernels)
}

// workerScratch is one worker's buffers.
type workerScratch struct {
	img   []float32    // the zero-padded image
	out   []float32    // the conv's positions × kernels, or the filter's elements × kernels
	post  []float32    // the patch model's posterior, positions × kernels
	joint []float32    // the image model's log joint, kernels × positions
	pb    gemm.PackedB // the filter's posterior, transposed
	stats []float32    // the fused steps' numerator Sᵀ (elements × kernels) over a few images
	ws    gemm.Workspace
}

// worker returns the buffers of worker i, with img sized for n values and
// out for outLen.
func (s *scratch) worker(i, n, outLen int) *workerScratch {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.workers) <= i {
		s.workers = append(s.workers, new(workerScratch))
	}
	w := s.workers[i]
	w.img = resize(w.img, n)
	w.out = resize(w.out, outLen)
	return w
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// A convolution is what both fast convolution ops start a run from: the
// images, the bias, the sizes, and θᵀ packed into the scratch's theta.
type convolution struct {
	x, bias               []float32
	n, c, h, w, k, kh, kw int
	uh, uw, d, u          int // positions, kernel elements, positions in all
	ix                    *patchIndex
}

// conv checks the inputs (images, kernels, bias) of a fast convolution op
// at padding pad, packs θᵀ (elements × kernels) once for the batch and
// returns the run's sizes and patch index.
func (s *scratch) conv(what string, kern *gemm.MicroKernel, pad int, in [][]float32, shapes []tensor.Shape) (convolution, error) {
	xs, ws := shapes[0], shapes[1]
	cv := convolution{x: in[0], bias: in[2], n: xs[0], c: xs[1], h: xs[2], w: xs[3], k: ws[0], kh: ws[2], kw: ws[3]}
	if ws[1] != cv.c || len(cv.bias) != cv.k {
		return cv, fmt.Errorf("graph: %s: shapes %v, %v, (%d)", what, xs, ws, len(cv.bias))
	}
	cv.uh, cv.uw = cv.h+2*pad-cv.kh+1, cv.w+2*pad-cv.kw+1
	cv.d, cv.u = cv.c*cv.kh*cv.kw, cv.uh*cv.uw
	s.theta.Pack(kern, cv.d, cv.k, 1, gemm.Matrix{Data: in[1], Stride: cv.d, T: true})
	cv.ix = s.index(cv.c, cv.h, cv.w, cv.kh, cv.kw, pad)
	return cv, nil
}

// rowsOfBias returns rows copies of the bias: the start of each
// position's row of a block (logJoint), one copy per block instead of one
// per position.
func (cv convolution) rowsOfBias(rows int) []float32 {
	out := make([]float32, rows*cv.k)
	for p := 0; p < rows; p++ {
		copy(out[p*cv.k:(p+1)*cv.k], cv.bias)
	}
	return out
}

// logJoint computes into b.out, and returns, the log joint of the patches
// at offsets pos of the padded images in b.img (a block of one image's
// positions, cv.ix.pos[p0:p0+r], or of several images'): len(pos) rows of
// cv.k values, each the bias (biasRows, from rowsOfBias) plus its patch's
// products with θ.
func (sc *scratch) logJoint(cv convolution, b *workerScratch, biasRows []float32, pos []int32) []float32 {
	blk := b.out[:len(pos)*cv.k]
	copy(blk, biasRows)
	gemm.MulGather(gemm.Gather{Src: b.img, Rows: pos, Cols: cv.ix.elem}, &sc.theta, blk, cv.k, &b.ws)
	return blk
}

// startConv prepares a run of a fast convolution op: its inputs and
// output (opBase.prepare), then its convolution (scratch.conv).
func (op opBase) startConv(what string, vals []G.Value, infer func(...G.DimSizer) (tensor.Shape, error), kern *gemm.MicroKernel, pad int) (cv convolution, sc *scratch, out *tensor.Dense, err error) {
	in, shapes, out, err := op.prepare(vals, infer)
	if err != nil {
		return cv, nil, nil, err
	}
	sc = op.out.scratch()
	if cv, err = sc.conv(what, kern, pad, in, shapes); err != nil {
		return cv, nil, nil, err
	}
	return cv, sc, out, nil
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
	pad   int
	kern  *gemm.MicroKernel
	post  *posteriorState // when set, the op's output is model's posterior, and its side results go here
	model Model
}

func (op fastConvOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	return convShape(s[0], s[1], op.pad), nil
}

// convShape is the shape (N,K,Uh,Uw) of the convolution of images of shape
// xs (N,C,H,W) with kernels of shape ws (K,C,kh,kw) at padding pad.
func convShape(xs, ws tensor.Shape, pad int) tensor.Shape {
	return tensor.Shape{xs[0], ws[0], xs[2] + 2*pad - ws[2] + 1, xs[3] + 2*pad - ws[3] + 1}
}

func (op fastConvOp) Do(vals ...G.Value) (G.Value, error) {
	cv, sc, out, err := op.startConv("fast conv2d", vals, op.InferShape, op.kern, op.pad)
	if err != nil {
		return nil, err
	}
	x, ix := cv.x, cv.ix
	n, c, h, wd, k, u := cv.n, cv.c, cv.h, cv.w, cv.k, cv.u
	o := out.Data().([]float32)
	if op.post != nil {
		op.post.prepare(n, k)
	}
	// The image model normalises over an image's every position at once;
	// else an image's positions go through in blocks of rows that stay in
	// cache from the product to the transpose (each element's sum does not
	// depend on the rows beside it: the same bits for any block).
	rows := u
	if op.post == nil || op.model == PatchModel {
		rows = max(posteriorBlock, min(u, blockValues/k/posteriorBlock*posteriorBlock))
	}
	parallel(n, func(worker, lo, hi int) {
		b := sc.worker(worker, c*ix.hp*ix.wp, rows*k)
		maxes := make([]float32, k)
		var counts []float64
		switch {
		case op.post == nil:
		case op.model == PatchModel:
			counts = make([]float64, k)
			b.post = resize(b.post, rows*k)
		default:
			b.joint = resize(b.joint, k*u)
		}
		// Positions × kernels, each row starting from the bias: one copy
		// of this block per block of positions instead of one per position.
		biasRows := cv.rowsOfBias(rows)
		var run positionRun
		for i := lo; i < hi; i++ {
			ix.padImage(b.img, x[i*c*h*wd:(i+1)*c*h*wd])
			oi := o[i*k*u : (i+1)*k*u]
			if op.post != nil && op.model == PatchModel {
				run.start(maxes, counts)
			}
			for p0 := 0; p0 < u; p0 += rows {
				r := min(rows, u-p0)
				blk := sc.logJoint(cv, b, biasRows, ix.pos[p0:p0+r])
				switch {
				case op.post == nil:
					gemm.Transpose(oi[p0:], u, blk, k, r, k)
				case op.model == PatchModel:
					// The posterior over kernels of each position is a row
					// of the block, normalised while it is in cache, then
					// transposed into the output.
					run.add(blk, b.post, k, r, u)
					gemm.Transpose(oi[p0:], u, b.post, k, r, k)
				default:
					gemm.Transpose(b.joint, u, blk, k, u, k)
					op.post.image(i, b.joint, oi, k, u, maxes)
				}
			}
			if op.post != nil && op.model == PatchModel {
				run.finish(op.post, i, k)
			}
		}
	})
	if op.post != nil {
		op.post.counts(n, k)
	}
	return out, nil
}

// blockValues is about how many values of a positions × kernels block
// the convolution keeps in cache at once (256 KiB of float32).
const blockValues = 1 << 16

type fastFilterOp struct {
	opBase
	pad  int
	kern *gemm.MicroKernel
}

// filterShards is the fixed number of partial sums of the M-step
// convolution, so that results do not depend on the number of workers;
// filterFlush is how many images a shard sums in float32 before it adds
// them into its float64 sum.
const (
	filterShards = 8
	filterFlush  = 8
)

func (op fastFilterOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	xs, fs := s[0], s[1]
	return tensor.Shape{fs[1], xs[1], xs[2] + 2*op.pad - fs[2] + 1, xs[3] + 2*op.pad - fs[3] + 1}, nil
}

func (op fastFilterOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	x, f, xs, fs, outShape := in[0], in[1], shapes[0], shapes[1], out.Shape()
	n, c, h, wd := xs[0], xs[1], xs[2], xs[3]
	k, uh, uw := fs[1], fs[2], fs[3]
	kh, kw := outShape[2], outShape[3]
	if fs[0] != n {
		return nil, fmt.Errorf("graph: fast conv2d filter: %d images, %d maps", n, fs[0])
	}
	d, u := c*kh*kw, uh*uw
	shards := min(n, filterShards)
	sc := op.out.scratch()
	sc.shards = resize(sc.shards, shards*d*k)
	clear(sc.shards)
	ix := sc.index(c, h, wd, kh, kw, op.pad)
	// Shard s sums Sᵀ = Σ_i patches_i (D×U) · f_iᵀ (U×K) over its images.
	parallel(shards, func(worker, lo, hi int) {
		b := sc.worker(worker, c*ix.hp*ix.wp, d*k)
		for s := lo; s < hi; s++ {
			sum := sc.shards[s*d*k : (s+1)*d*k]
			first, last := s*n/shards, (s+1)*n/shards
			clear(b.out)
			for i := first; i < last; i++ {
				b.pb.Pack(op.kern, u, k, 1, gemm.Matrix{Data: f[i*k*u : (i+1)*k*u], Stride: u, T: true})
				ix.padImage(b.img, x[i*c*h*wd:(i+1)*c*h*wd])
				gemm.MulGather(gemm.Gather{Src: b.img, Rows: ix.elem, Cols: ix.pos}, &b.pb, b.out, k, &b.ws)
				if (i-first+1)%filterFlush == 0 || i == last-1 {
					for j, v := range b.out {
						sum[j] += float64(v)
					}
					clear(b.out)
				}
			}
		}
	})
	sc.sumShards(out.Data().([]float32), shards, d, k)
	return out, nil
}

// sumShards sets o[k, e] = Σ_shards Sᵀ[e, k] (d elements, k kernels), in
// shard order.
func (sc *scratch) sumShards(o []float32, shards, d, k int) {
	for e := 0; e < d; e++ {
		for kk := 0; kk < k; kk++ {
			var s float64
			for sh := 0; sh < shards; sh++ {
				s += sc.shards[sh*d*k+e*k+kk]
			}
			o[kk*d+e] = float32(s)
		}
	}
}
