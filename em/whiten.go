package em

import (
	"fmt"
	"math"
	"sync"

	"calm/graph"

	"gonum.org/v1/gonum/mat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Whitening is ZCA whitening of images by a convolution, in front of the
// first layer (Coates, Lee & Ng 2011 found whitening decisive for patch
// dictionaries). Estimated from f×f patches with mean μ and covariance
// Σ = V diag(d) Vᵀ, the ZCA map is W = V diag(1/√(d+ε)) Vᵀ; the filter
// holds, for each channel c, the row of W of the centre pixel of channel c,
// so that convolving an image with it (padding f/2, bias −W_c·μ) gives at
// every pixel the ZCA-whitened value of the patch centred there. Patches of
// the whitened images have about unit variance in every direction, which is
// the covariance I the CALM models assume.
type Whitening struct {
	Width   int           // f, odd
	Epsilon float64       // ε, the regulariser of the small eigenvalues
	Filter  *tensor.Dense // (C,C,f,f)
	Bias    []float32     // (C)
}

// NewWhitening estimates the whitening of the images of src from sample
// patches of f×f drawn with seed (SamplePatches).
func NewWhitening(src Source, f int, eps float64, sample int, seed uint64) (*Whitening, error) {
	n, c, h, w := src.Shape()
	switch {
	case f < 1 || f%2 == 0 || f > h || f > w:
		return nil, fmt.Errorf("em: whitening filter of width %d for %d×%d images: want an odd width that fits", f, h, w)
	case !(eps > 0):
		return nil, fmt.Errorf("em: whitening with ε = %v: want ε > 0", eps)
	case sample < 2:
		return nil, fmt.Errorf("em: whitening from %d patches: want at least 2", sample)
	}
	cfg := graph.Config{Kernels: 1, Width: f, Channels: c, Rows: h, Cols: w, Batch: min(n, 1)}
	patches, err := SamplePatches(src, cfg, sample, seed)
	if err != nil {
		return nil, fmt.Errorf("em: whitening: %w", err)
	}
	d := cfg.KernelLen()
	mean := make([]float64, d)
	for p := 0; p < sample; p++ {
		for j, v := range patches[p*d : (p+1)*d] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(sample)
	}
	x := mat.NewDense(sample, d, nil)
	for p := 0; p < sample; p++ {
		for j, v := range patches[p*d : (p+1)*d] {
			x.Set(p, j, float64(v)-mean[j])
		}
	}
	var cov mat.SymDense
	cov.SymOuterK(1/float64(sample), x.T())
	var eig mat.EigenSym
	if !eig.Factorize(&cov, true) {
		return nil, fmt.Errorf("em: whitening: the eigendecomposition of the patch covariance failed")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	scaled := mat.DenseCopyOf(&vecs)
	for j, v := range vals {
		s := 1 / math.Sqrt(math.Max(v, 0)+eps)
		for i := 0; i < d; i++ {
			scaled.Set(i, j, scaled.At(i, j)*s)
		}
	}
	var zca mat.Dense
	zca.Mul(scaled, vecs.T())
	filter := make([]float32, c*d)
	bias := make([]float32, c)
	for ch := 0; ch < c; ch++ {
		centre := (ch*f+f/2)*f + f/2
		var b float64
		for j := 0; j < d; j++ {
			v := zca.At(centre, j)
			filter[ch*d+j] = float32(v)
			b -= v * mean[j]
		}
		bias[ch] = float32(b)
	}
	return &Whitening{Width: f, Epsilon: eps, Filter: tensor.New(tensor.WithShape(c, c, f, f), tensor.WithBacking(filter)), Bias: bias}, nil
}

// Source returns the images of src whitened, batch images at a time by a
// convolution graph of ops (nil: the default op set). It reads src on
// demand and is safe for concurrent use; Close releases its graph.
func (wh *Whitening) Source(src Source, ops graph.Ops, batch int) (*Whitened, error) {
	n, c, h, w := src.Shape()
	fs := wh.Filter.Shape()
	if fs[0] != c || fs[1] != c || len(wh.Bias) != c {
		return nil, fmt.Errorf("em: a whitening of %d channels for images of %d", fs[0], c)
	}
	cfg := graph.Config{Kernels: c, Width: wh.Width, Pad: wh.Width / 2, Channels: c, Rows: h, Cols: w, Batch: max(1, min(batch, n))}
	ops = defaultOps(ops)
	step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg).Named("bias")},
		func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
			out, err := ops.Conv2d(in[0], in[1], in[2], cfg.Pad)
			return []*G.Node{out}, err
		})
	if err != nil {
		return nil, fmt.Errorf("em: whitening: %w", err)
	}
	return &Whitened{src: src, wh: wh, step: step, cfg: cfg, bias: tensor.New(tensor.WithShape(c), tensor.WithBacking(wh.Bias))}, nil
}

// Whitened is a Source of whitened images (Whitening.Source).
type Whitened struct {
	src  Source
	wh   *Whitening
	cfg  graph.Config
	bias *tensor.Dense

	mu   sync.Mutex // guards step and buf
	step *graph.Step
	buf  []float32
}

// Shape implements Source.
func (s *Whitened) Shape() (n, c, h, w int) { return s.src.Shape() }

// Read implements Source.
func (s *Whitened) Read(dst []float32, start int) error {
	size := s.cfg.ImageLen()
	if len(dst)%size != 0 {
		return fmt.Errorf("em: whitened read of %d values: not whole images of %d", len(dst), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(dst) > 0 {
		k := min(len(dst)/size, s.cfg.Batch)
		if cap(s.buf) < k*size {
			s.buf = make([]float32, k*size)
		}
		s.buf = s.buf[:k*size]
		if err := s.src.Read(s.buf, start); err != nil {
			return err
		}
		x := tensor.New(tensor.WithShape(s.cfg.ImageShape(k)...), tensor.WithBacking(s.buf))
		if err := s.step.RunInto([][]float32{dst[:k*size]}, x, s.wh.Filter, s.bias); err != nil {
			return fmt.Errorf("em: whitening: %w", err)
		}
		dst, start = dst[k*size:], start+k
	}
	return nil
}

// Close releases the whitening graph.
func (s *Whitened) Close() error { return s.step.Close() }
