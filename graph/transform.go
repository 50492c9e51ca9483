package graph

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"calm/internal/vecmath"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The ops of this file turn one layer's log joint into the next layer's
// input: the posterior over kernels at each position, a local pooling,
// and a per-channel affine map (the standardisation).

// KernelPosterior adds to x's graph a node computing, for a log joint x
// (N,K,Uh,Uw), the posterior over kernels at each position:
//
//	q[n,k,u] = exp(x[n,k,u]) / Σ_j exp(x[n,j,u])
//
// (a softmax over the kernel axis, stable; a position whose values are all
// −Inf gets zeros).
func KernelPosterior(x *G.Node) (*G.Node, error) {
	if err := checkMaps("kernel posterior", x); err != nil {
		return nil, err
	}
	return apply("kernel posterior", kernelPosteriorOp{sameShape{newBase(sig(4, 4), "KernelPosterior")}}, x)
}

type kernelPosteriorOp struct{ sameShape }

func (op kernelPosteriorOp) Do(vals ...G.Value) (G.Value, error) {
	x, shape, err := float32s("kernel posterior", vals[0])
	if err != nil {
		return nil, err
	}
	out := op.out.get(tensor.Float32, shape...)
	q := out.Data().([]float32)
	n, k, u := shape[0], shape[1], shape[2]*shape[3]
	parallel(n, func(_, lo, hi int) {
		m := make([]float32, u)
		s := make([]float32, u)
		for i := lo; i < hi; i++ {
			positionPosterior(x[i*k*u:(i+1)*k*u], q[i*k*u:(i+1)*k*u], m, s, k, u)
		}
	})
	return out, nil
}

// positionPosterior writes into q (k rows of u positions) the posterior
// over kernels at each position of one image's log joint x, and leaves in
// m the maximum over kernels of each position and in s the reciprocal of
// the sum of exp(x − m) over kernels (0 where every value is −Inf, whose
// posterior is all zeros): log Σ_k exp x[k,p] = m[p] − log s[p].
func positionPosterior(x, q, m, s []float32, k, u int) {
	// The maximum over kernels of each position, then the exponentials
	// against it, row by row, and their sums per position; each pass a
	// plain loop over a row.
	copy(m, x[:u])
	for kk := 1; kk < k; kk++ {
		for p, v := range x[kk*u : (kk+1)*u] {
			// A plain compare, not max's NaN handling: a NaN in x still
			// makes its position's posterior NaN (through exp and the sum).
			if v > m[p] {
				m[p] = v
			}
		}
	}
	empty := false // a position whose values are all −Inf
	for _, v := range m {
		empty = empty || math.IsInf(float64(v), -1)
	}
	clear(s)
	for kk := 0; kk < k; kk++ {
		row, in := q[kk*u:(kk+1)*u], x[kk*u:(kk+1)*u]
		for p, v := range in {
			row[p] = v - m[p]
		}
		if empty {
			for p := range row {
				if math.IsInf(float64(m[p]), -1) {
					row[p] = float32(math.Inf(-1)) // exp gives 0
				}
			}
		}
		vecmath.Exp(row, row)
		for p, v := range row {
			s[p] += v
		}
	}
	for p, v := range s {
		if v > 0 {
			s[p] = 1 / v
		}
	}
	for kk := 0; kk < k; kk++ {
		row := q[kk*u : (kk+1)*u]
		for p, r := range s {
			row[p] *= r
		}
	}
}

// OutSize is the number of windows of size along an axis of n: windows
// cover [i·size, min((i+1)·size, n)), the last one possibly short.
func OutSize(n, size int) int { return (n + size - 1) / size }

// LocalPool adds to x's graph a node pooling maps x (N,K,H,W) over
// windows of size×size with stride size (the last windows along an axis
// may be short: see OutSize), by reduce: the mean, the maximum or the
// log-sum-exp of each window. The result is (N,K,⌈H/size⌉,⌈W/size⌉).
func LocalPool(x *G.Node, size int, reduce Reduction) (*G.Node, error) {
	if err := checkMaps("local pool", x); err != nil {
		return nil, err
	}
	if size < 1 {
		return nil, fmt.Errorf("graph: local pool: window %d, want at least 1", size)
	}
	if reduce != LogSumExpCells && reduce != MaxCells && reduce != MeanCells {
		return nil, fmt.Errorf("graph: local pool: unknown reduction %d", reduce)
	}
	return apply("local pool", localPoolOp{opBase: newBase(sig(4, 4), "LocalPool/%d/%d", size, reduce), size: size, reduce: reduce}, x)
}

type localPoolOp struct {
	opBase
	size   int
	reduce Reduction
}

func (op localPoolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	shapes, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	s := shapes[0]
	return tensor.Shape{s[0], s[1], OutSize(s[2], op.size), OutSize(s[3], op.size)}, nil
}

func (op localPoolOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	x, shape, o := in[0], shapes[0], out.Data().([]float32)
	h, w := shape[2], shape[3]
	oh, ow := out.Shape()[2], out.Shape()[3]
	s := op.size
	parallel(shape[0]*shape[1], func(_, lo, hi int) {
		sums := make([]float64, ow)
		for m := lo; m < hi; m++ {
			in, res := x[m*h*w:(m+1)*h*w], o[m*oh*ow:(m+1)*oh*ow]
			for oy := 0; oy < oh; oy++ {
				y0, y1 := oy*s, min((oy+1)*s, h)
				r := res[oy*ow : (oy+1)*ow]
				switch op.reduce {
				case MaxCells:
					if s == 2 && y1 == y0+2 {
						// The stacks' 2×2 windows, two input rows at a
						// time (the general loop below slices each window).
						maxPairs(r, in[y0*w:(y0+1)*w], in[(y0+1)*w:(y0+2)*w])
						continue
					}
					// Row by row, each output column the max of its window.
					for ox := range r {
						r[ox] = float32(math.Inf(-1))
					}
					for y := y0; y < y1; y++ {
						row := in[y*w : (y+1)*w]
						for ox := range r {
							for _, v := range row[ox*s : min(ox*s+s, w)] {
								r[ox] = max(r[ox], v)
							}
						}
					}
				case MeanCells:
					clear(sums)
					for y := y0; y < y1; y++ {
						row := in[y*w : (y+1)*w]
						for ox := range sums {
							for _, v := range row[ox*s : min(ox*s+s, w)] {
								sums[ox] += float64(v)
							}
						}
					}
					for ox := range r {
						r[ox] = float32(sums[ox] / float64((y1-y0)*(min((ox+1)*s, w)-ox*s)))
					}
				case LogSumExpCells:
					for ox := range r {
						r[ox] = float32(windowLSE(in, w, y0, y1, ox*s, min((ox+1)*s, w)))
					}
				}
			}
		}
	})
	return out, nil
}

// maxPairs sets each r[ox] to the maximum of columns 2·ox and 2·ox+1 of
// rows a and b (one column where a row ends short), NaN if any is NaN, as
// max gives it.
func maxPairs(r, a, b []float32) {
	w := len(a)
	b = b[:w]
	full := w / 2
	for ox := 0; ox < full; ox++ {
		r[ox] = max(a[2*ox], a[2*ox+1], b[2*ox], b[2*ox+1])
	}
	if full < len(r) {
		r[full] = max(a[w-1], b[w-1])
	}
}

// windowLSE returns log Σ exp over rows [y0, y1) and columns [x0, x1) of a
// map w wide, in float64 against the window's own maximum: −Inf for a
// window of −Inf, +Inf or NaN as the values say.
func windowLSE(m []float32, w, y0, y1, x0, x1 int) float64 {
	mx := math.Inf(-1)
	for y := y0; y < y1; y++ {
		for _, v := range m[y*w+x0 : y*w+x1] {
			if v := float64(v); v > mx || v != v {
				mx = v
			}
		}
	}
	if math.IsInf(mx, 0) || mx != mx {
		return mx
	}
	var s float64
	for y := y0; y < y1; y++ {
		for _, v := range m[y*w+x0 : y*w+x1] {
			s += math.Exp(float64(v) - mx)
		}
	}
	return mx + math.Log(s)
}

// ChannelAffine adds to x's graph a node computing, for maps x (N,C,H,W)
// and per-channel scale and shift (C),
//
//	y[n,c,·] = x[n,c,·] · scale[c] + shift[c]
//
// the standardisation of a layer's transformed maps into the next layer's
// input.
func ChannelAffine(x, scale, shift *G.Node) (*G.Node, error) {
	if err := checkMaps("channel affine", x); err != nil {
		return nil, err
	}
	c := x.Shape()[1]
	for _, v := range []*G.Node{scale, shift} {
		if s := v.Shape(); s.Dims() != 1 || s[0] != c {
			return nil, fmt.Errorf("graph: channel affine: %s has shape %v, want (%d)", v.Name(), s, c)
		}
	}
	if err := checkFloat32("channel affine", scale, shift); err != nil {
		return nil, err
	}
	return apply("channel affine", channelAffineOp{sameShape{newBase(sig(4, 4, 1, 1), "ChannelAffine")}}, x, scale, shift)
}

type channelAffineOp struct{ sameShape }

func (op channelAffineOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, err := op.inputs(vals)
	if err != nil {
		return nil, err
	}
	x, scale, shift, shape := in[0], in[1], in[2], shapes[0]
	c, hw := shape[1], shape[2]*shape[3]
	if len(scale) != c || len(shift) != c {
		return nil, fmt.Errorf("graph: channel affine: %d and %d values for %d channels", len(scale), len(shift), c)
	}
	out := op.out.get(tensor.Float32, shape...)
	o := out.Data().([]float32)
	parallel(shape[0]*c, func(_, lo, hi int) {
		for m := lo; m < hi; m++ {
			a, b := scale[m%c], shift[m%c]
			dst := o[m*hw : (m+1)*hw]
			for i, v := range x[m*hw : (m+1)*hw] {
				dst[i] = v*a + b
			}
		}
	})
	return out, nil
}

// A Transform says what the next layer of a stack sees of a layer's log
// joint L (N,K,Uh,Uw): L itself, or the posterior over kernels at each
// position (KernelPosterior); then, with Pool > 1, that pooled over
// windows of Pool×Pool with stride Pool by Reduce (LocalPool); with Root,
// the square root of the pooled posterior (Sqrt: the encoding that makes
// one layer's best features, offered to the layer above; README, Deep
// CALM, measures it there); then each channel
// standardised by a scale and a shift measured on the training maps
// (ChannelAffine), since the next layer's Gaussian model takes inputs of
// about unit variance.
type Transform struct {
	Posterior bool
	Root      bool // only with Posterior
	Pool      int
	Reduce    Reduction
}

// String returns t's name, the one the -layers flag and every file use:
// "joint", "post" or "post-root" (the log joint, the posterior over
// kernels, its square root), then, with Pool > 1, "+" and the reduction's
// name and the window: "post+max2", "joint+lse2", "post-root+mean2".
func (t Transform) String() string {
	s := "joint"
	if t.Posterior {
		s = "post"
	}
	if t.Root {
		s += "-root"
	}
	if t.Pool > 1 {
		s += fmt.Sprintf("+%s%d", t.Reduce, t.Pool)
	}
	return s
}

// ParseTransform returns the transform of the given name (see String).
func ParseTransform(name string) (Transform, error) {
	bad := fmt.Errorf("graph: unknown transform %q (want post, post-root or joint, optionally followed by +lseN, +maxN or +meanN with N ≥ 2)", name)
	what, pool, pooled := strings.Cut(name, "+")
	var t Transform
	switch what {
	case "post":
		t.Posterior = true
	case "post-root":
		t.Posterior, t.Root = true, true
	case "joint":
	default:
		return Transform{}, bad
	}
	if !pooled {
		return t, nil
	}
	for r, prefix := range reductionNames.List {
		if rest, ok := strings.CutPrefix(pool, prefix); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 2 || rest != strconv.Itoa(n) {
				return Transform{}, bad
			}
			t.Reduce, t.Pool = Reduction(r), n
			return t, nil
		}
	}
	return Transform{}, bad
}

// MarshalText writes the transform's name.
func (t Transform) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a transform's name.
func (t *Transform) UnmarshalText(b []byte) error {
	v, err := ParseTransform(string(b))
	*t = v
	return err
}

// Next returns the configuration of the layer that sees c's maps through t,
// with next's kernels, width and padding.
func (t Transform) Next(c Config, kernels, width, pad int) Config {
	uh, uw := c.Positions()
	if t.Pool > 1 {
		uh, uw = OutSize(uh, t.Pool), OutSize(uw, t.Pool)
	}
	return Config{Kernels: kernels, Width: width, Pad: pad, Channels: c.Kernels, Rows: uh, Cols: uw, Batch: c.Batch}
}

// Apply adds to logJoint's graph the transform's nodes, without the
// standardisation (ChannelAffine, which the stack graphs add after it).
func (t Transform) Apply(logJoint *G.Node) (*G.Node, error) {
	if t.Root && !t.Posterior {
		return nil, fmt.Errorf("graph: transform %s: the square root takes the posterior", t)
	}
	if t.Posterior {
		post, err := KernelPosterior(logJoint)
		if err != nil {
			return nil, err
		}
		return t.FromPosterior(post)
	}
	return t.pool(logJoint)
}

// FromPosterior is Apply for a transform of the posterior, given the
// posterior over kernels at each position (KernelPosterior of the log
// joint, or an op set's fused one) instead of the log joint.
func (t Transform) FromPosterior(post *G.Node) (*G.Node, error) {
	if !t.Posterior {
		return nil, fmt.Errorf("graph: transform %s takes the log joint, not the posterior", t)
	}
	return t.pool(post)
}

// pool adds the transform's pooling and square root to x.
func (t Transform) pool(x *G.Node) (*G.Node, error) {
	var err error
	if t.Pool > 1 {
		if x, err = LocalPool(x, t.Pool, t.Reduce); err != nil {
			return nil, err
		}
	}
	if t.Root {
		return Sqrt(x)
	}
	return x, nil
}
