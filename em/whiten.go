package em

import (
	"fmt"
	"math"
	"sync"

	"calm/dataset"
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
//
// With Patches set it whitens patches instead (Coates, Lee & Ng's
// pipeline): each f×f patch x_u of an image (padding 0, stride 1) is
// normalised for brightness and contrast, x̂_u = (x_u − mean)/√(var + εc)
// with εc = Contrast, and mapped by the ZCA W of the normalised patches,
// x̃_u = W(x̂_u − m). The whitened image has D = C·f·f channels, x̃_u at
// position u: a layer of 1×1 kernels on it models the patches of width f.
// The filter holds the rows of W, each less its mean (so that the
// convolution drops each patch's mean), graph.ContrastNormalize divides by
// the contrast, and the bias is −Wm.
type Whitening struct {
	Width   int           // f (odd unless Patches)
	Epsilon float64       // ε, the regulariser of the small eigenvalues
	Filter  *tensor.Dense // (C,C,f,f); with Patches (C·f·f,C,f,f)
	Bias    []float32     // (C); with Patches (C·f·f)

	Patches  bool    // whiten each patch, normalised, into the channels of one position
	Contrast float64 // εc, the variance added to each patch's before it is normalised (Patches)
}

// DefaultContrast is the variance added to each patch's before its
// contrast is normalised: Coates, Lee & Ng's 10 for pixels of 0–255, for
// pixels in [0, 1].
const DefaultContrast = 10.0 / (255 * 255)

// Shape returns the shape (C,H,W) of what the whitening makes of images
// of shape (c,h,w).
func (wh *Whitening) Shape(c, h, w int) (int, int, int) {
	if wh.Patches {
		return c * wh.Width * wh.Width, h - wh.Width + 1, w - wh.Width + 1
	}
	return c, h, w
}

// NewWhitening estimates the whitening of the images of src from sample
// patches of f×f drawn with seed (SamplePatches).
func NewWhitening(src dataset.Source, f int, eps float64, sample int, seed uint64) (*Whitening, error) {
	_, c, h, w := src.Shape()
	switch {
	case f < 1 || f%2 == 0 || f > h || f > w:
		return nil, fmt.Errorf("em: whitening filter of width %d for %d×%d images: want an odd width that fits", f, h, w)
	case !(eps > 0):
		return nil, fmt.Errorf("em: whitening with ε = %v: want ε > 0", eps)
	}
	zca, mean, d, err := sampleZCA(src, f, sample, seed, eps, 0)
	if err != nil {
		return nil, err
	}
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

// NewPatchWhitening estimates the whitening of the f×f patches of the
// images of src (Whitening.Patches) from sample patches drawn with seed
// (SamplePatches), each normalised with contrast ε c.
func NewPatchWhitening(src dataset.Source, f int, eps, contrast float64, sample int, seed uint64) (*Whitening, error) {
	_, c, h, w := src.Shape()
	switch {
	case f < 1 || f > h || f > w:
		return nil, fmt.Errorf("em: whitening patches of width %d for %d×%d images: want a width that fits", f, h, w)
	case !(eps > 0) || !(contrast > 0):
		return nil, fmt.Errorf("em: whitening with ε = %v, contrast ε = %v: want both > 0", eps, contrast)
	}
	zca, mean, d, err := sampleZCA(src, f, sample, seed, eps, contrast)
	if err != nil {
		return nil, err
	}
	filter := make([]float32, d*d)
	bias := make([]float32, d)
	for i := 0; i < d; i++ {
		var rowMean, b float64
		for j := 0; j < d; j++ {
			rowMean += zca.At(i, j) / float64(d)
			b -= zca.At(i, j) * mean[j]
		}
		for j := 0; j < d; j++ {
			filter[i*d+j] = float32(zca.At(i, j) - rowMean)
		}
		bias[i] = float32(b)
	}
	return &Whitening{Width: f, Epsilon: eps, Filter: tensor.New(tensor.WithShape(d, c, f, f), tensor.WithBacking(filter)), Bias: bias,
		Patches: true, Contrast: contrast}, nil
}

// sampleZCA returns the ZCA map (zcaOf) of sample patches of width f (d
// values each) of the images of src, drawn with seed (SamplePatches), and
// their mean; with contrast > 0 each patch is first normalised with it.
func sampleZCA(src dataset.Source, f, sample int, seed uint64, eps, contrast float64) (zca *mat.Dense, mean []float64, d int, err error) {
	if sample < 2 {
		return nil, nil, 0, fmt.Errorf("em: whitening from %d patches: want at least 2", sample)
	}
	n, c, h, w := src.Shape()
	cfg := graph.Config{Kernels: 1, Width: f, Channels: c, Rows: h, Cols: w, Batch: min(n, 1)}
	patches, err := SamplePatches(src, cfg, sample, seed)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("em: whitening: %w", err)
	}
	d = cfg.KernelLen()
	if contrast > 0 {
		for p := 0; p < sample; p++ {
			normalizePatch(patches[p*d:(p+1)*d], contrast)
		}
	}
	zca, mean, err = zcaOf(patches, d, eps)
	return zca, mean, d, err
}

// normalizePatch sets p to (p − mean)/√(var + contrast), its mean and
// variance taken over its values, in float64.
func normalizePatch(p []float32, contrast float64) {
	var mean, v float64
	for _, x := range p {
		mean += float64(x)
	}
	mean /= float64(len(p))
	for _, x := range p {
		v += (float64(x) - mean) * (float64(x) - mean)
	}
	s := math.Sqrt(v/float64(len(p)) + contrast)
	for i, x := range p {
		p[i] = float32((float64(x) - mean) / s)
	}
}

// zcaOf returns the ZCA map W = V diag(1/√(d+ε)) Vᵀ of the patches (rows
// of dim values) and their mean, from the eigendecomposition V diag(d) Vᵀ
// of their covariance, in float64.
func zcaOf(patches []float32, dim int, eps float64) (*mat.Dense, []float64, error) {
	sample := len(patches) / dim
	mean := make([]float64, dim)
	for p := 0; p < sample; p++ {
		for j, v := range patches[p*dim : (p+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(sample)
	}
	x := mat.NewDense(sample, dim, nil)
	for p := 0; p < sample; p++ {
		for j, v := range patches[p*dim : (p+1)*dim] {
			x.Set(p, j, float64(v)-mean[j])
		}
	}
	var cov mat.SymDense
	cov.SymOuterK(1/float64(sample), x.T())
	var eig mat.EigenSym
	if !eig.Factorize(&cov, true) {
		return nil, nil, fmt.Errorf("em: whitening: the eigendecomposition of the patch covariance failed")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	scaled := mat.DenseCopyOf(&vecs)
	for j, v := range vals {
		s := 1 / math.Sqrt(math.Max(v, 0)+eps)
		for i := 0; i < dim; i++ {
			scaled.Set(i, j, scaled.At(i, j)*s)
		}
	}
	var zca mat.Dense
	zca.Mul(scaled, vecs.T())
	return &zca, mean, nil
}

// Source returns the images of src whitened, batch images at a time by a
// convolution graph of ops (nil: the default op set). It reads src on
// demand and is safe for concurrent use; Close releases its graph.
func (wh *Whitening) Source(src dataset.Source, ops graph.Ops, batch int) (*Whitened, error) {
	n, c, h, w := src.Shape()
	fs := wh.Filter.Shape()
	out, _, _ := wh.Shape(c, h, w)
	if fs[0] != out || fs[1] != c || len(wh.Bias) != out || wh.Width > min(h, w) {
		return nil, fmt.Errorf("em: a whitening of %v for images of %d×%d×%d", fs, c, h, w)
	}
	cfg := graph.Config{Kernels: out, Width: wh.Width, Pad: wh.Width / 2, Channels: c, Rows: h, Cols: w, Batch: max(1, min(batch, n))}
	if wh.Patches {
		cfg.Pad = 0
	}
	ops = defaultOps(ops)
	step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Kernels(cfg), graph.LogPrior(cfg).Named("bias")},
		func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
			if !wh.Patches {
				out, err := ops.Conv2d(in[0], in[1], in[2], cfg.Pad)
				return []*G.Node{out}, err
			}
			zero := G.NewConstant(tensor.New(tensor.WithShape(out), tensor.WithBacking(make([]float32, out))), G.WithName("whitening-zero-bias"))
			y, err := ops.Conv2d(in[0], in[1], zero, 0)
			if err != nil {
				return nil, err
			}
			norm, err := graph.ContrastNormalize(y, in[0], in[2], wh.Width, wh.Contrast)
			return []*G.Node{norm}, err
		})
	if err != nil {
		return nil, fmt.Errorf("em: whitening: %w", err)
	}
	oc, oh, ow := wh.Shape(c, h, w)
	return &Whitened{src: src, wh: wh, step: step, cfg: cfg, bias: tensor.New(tensor.WithShape(out), tensor.WithBacking(wh.Bias)),
		in: c * h * w, out: oc * oh * ow, shape: [3]int{oc, oh, ow}}, nil
}

// Whitened is a dataset.Source of whitened images (Whitening.Source).
type Whitened struct {
	src     dataset.Source
	wh      *Whitening
	cfg     graph.Config
	bias    *tensor.Dense
	in, out int    // values of an image read, of one whitened
	shape   [3]int // (C,H,W) of a whitened image

	mu   sync.Mutex // guards step and buf
	step *graph.Step
	buf  []float32
}

// Shape implements dataset.Source.
func (s *Whitened) Shape() (n, c, h, w int) {
	n, _, _, _ = s.src.Shape()
	return n, s.shape[0], s.shape[1], s.shape[2]
}

// Read implements dataset.Source.
func (s *Whitened) Read(dst []float32, start int) error {
	if len(dst)%s.out != 0 {
		return fmt.Errorf("em: whitened read of %d values: not whole images of %d", len(dst), s.out)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(dst) > 0 {
		k := min(len(dst)/s.out, s.cfg.Batch)
		if cap(s.buf) < k*s.in {
			s.buf = make([]float32, k*s.in)
		}
		s.buf = s.buf[:k*s.in]
		if err := s.src.Read(s.buf, start); err != nil {
			return err
		}
		x := tensor.New(tensor.WithShape(s.cfg.ImageShape(k)...), tensor.WithBacking(s.buf))
		if err := s.step.RunInto([][]float32{dst[:k*s.out]}, x, s.wh.Filter, s.bias); err != nil {
			return fmt.Errorf("em: whitening: %w", err)
		}
		dst, start = dst[k*s.out:], start+k
	}
	return nil
}

// Close releases the whitening graph.
func (s *Whitened) Close() error { return s.step.Close() }

// ImageFilters returns the filters that k kernels θ (K,C',w,w) of the layer
// on whitened images apply to the images themselves, (K,C,s,s) with the
// width s it returns: for a whitening of patches (w = 1), θ_k's channels
// weigh the filters of the whitened channels, s = f; for a whitening
// filter F, the kernels convolved with it, s = w+f−1 (the whitening's
// bias, a constant per kernel, is left out). They are what a figure shows
// of kernels learned on whitened images.
func (wh *Whitening) ImageFilters(theta []float32, k, w int) ([]float32, int, error) {
	fs := wh.Filter.Shape()
	f := wh.Filter.Data().([]float32)
	out, c, fw := fs[0], fs[1], fs[2]
	if len(theta) != k*out*w*w || wh.Patches && w != 1 {
		return nil, 0, fmt.Errorf("em: image filters of %d values for %d kernels of %d×%d×%d after a whitening of %v", len(theta), k, out, w, w, fs)
	}
	s := w + fw - 1
	if wh.Patches {
		s = fw
	}
	g := make([]float32, k*c*s*s)
	for kk := 0; kk < k; kk++ {
		th, dst := theta[kk*out*w*w:(kk+1)*out*w*w], g[kk*c*s*s:(kk+1)*c*s*s]
		for o := 0; o < out; o++ { // a channel of the whitened image
			for a := 0; a < w; a++ {
				for b := 0; b < w; b++ {
					t := th[(o*w+a)*w+b]
					// The whitened value at this offset is the filter of
					// channel o over the image around it.
					for ci := 0; ci < c; ci++ {
						for i := 0; i < fw; i++ {
							for j := 0; j < fw; j++ {
								dst[(ci*s+a+i)*s+b+j] += t * f[((o*c+ci)*fw+i)*fw+j]
							}
						}
					}
				}
			}
		}
	}
	return g, s, nil
}
