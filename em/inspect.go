package em

import (
	"fmt"

	"calm/dataset"
	"calm/estep"
	"calm/graph"

	"gorgonia.org/tensor"
)

// The functions of this file compute what the figures of a trained layer
// show, through the same compiled graphs as training; package viz draws
// them.

// A Responsibility is what a layer makes of one image: the kernel that
// explains it best and where.
type Responsibility struct {
	Kernel    int       // the most probable kernel
	Prob      float64   // its posterior mass Σ_u γ[k,u]: a probability under the image model, the patches it explains under the patch model
	Positions []float32 // Uh×Uw: its posterior over positions, γ[k,u] / Σ_u γ[k,u]
}

// Responsibilities runs the E-step of the layer res on the first count
// images of src (fewer if src has fewer) and returns, for each, its most
// probable kernel and that kernel's posterior over positions, with the
// images read.
func Responsibilities(src dataset.Source, res *Result, ops graph.Ops, count int) ([]Responsibility, []float32, error) {
	n, _, _, _ := src.Shape()
	count = min(count, n)
	cfg := res.Config
	cfg.Batch = count
	e, err := estep.New(cfg, defaultOps(ops))
	if err != nil {
		return nil, nil, fmt.Errorf("em: responsibilities: %w", err)
	}
	defer e.Close()
	x, err := (&batchReader{src: src, cfg: cfg}).read(0, count)
	if err != nil {
		return nil, nil, fmt.Errorf("em: responsibilities: %w", err)
	}
	pix := x.Data().([]float32)
	r, err := res.eStep(e, x, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("em: responsibilities: %w", err)
	}
	post := r.Posterior.Data().([]float32)
	uh, uw := cfg.Positions()
	u := uh * uw
	out := make([]Responsibility, count)
	for i := range out {
		p := post[i*cfg.Kernels*u : (i+1)*cfg.Kernels*u]
		best, mass := estep.MostProbable(p, cfg.Kernels, u)
		pos := make([]float32, u)
		for j, v := range p[best*u : (best+1)*u] {
			pos[j] = float32(float64(v) / mass)
		}
		out[i] = Responsibility{Kernel: best, Prob: mass, Positions: pos}
	}
	return out, pix, nil
}

// ReceptiveField returns the rows (or, the same way, the columns) of
// pixels that position u of layer l's positions (0-based) sees: a kernel
// of layer l at u covers its input's rows u−p … u−p+w−1, each a window of
// Pool positions of the layer below when that layer's transform pools, and
// so on down to the image; with a whitening of patches (Whitening.Patches),
// a position of layer 1's input is the image's patch that starts there.
func (s *Stack) ReceptiveField(l, u int) (lo, hi int) {
	lo, hi = u, u
	for j := l; j >= 0; j-- {
		cfg := s.Layers[j].Config
		lo, hi = lo-cfg.Pad, hi-cfg.Pad+cfg.Width-1 // rows of layer j's input
		if j > 0 {
			if pool := s.Layers[j-1].Transform.Pool; pool > 1 {
				lo, hi = lo*pool, hi*pool+pool-1 // positions of layer j−1
			}
		}
	}
	if s.Whitening != nil && s.Whitening.Patches {
		hi += s.Whitening.Width - 1 // the patch at the last position
	}
	return lo, hi
}

// BestPatches shows what each of the first shown kernels of layer l
// (0-based) responds to: over the first images of src (at most images),
// the mean of the pixel patches of pixels (its receptive field, side×side)
// at the best position of each of the top images its log joint is highest
// on. pixels holds the same images as src, as they are to be drawn: src
// itself, or the images before a whitening of patches turned them into
// channels. The tiles are (shown, C, side, side), C the channels of
// pixels.
func (s *Stack) BestPatches(src, pixels dataset.Source, l, images, top, shown int, ops graph.Ops) (tiles []float32, side int, err error) {
	n, _, _, _ := src.Shape()
	count := min(n, images)
	if pn, _, _, _ := pixels.Shape(); pn < count {
		return nil, 0, fmt.Errorf("em: best patches: %d images to draw from for %d", pn, count)
	}
	cfg := s.Layers[l].Config
	batch := min(count, 250)
	stages := s.Stages(l+1, batch)
	lj, err := estep.NewStackLogJoint(stages, defaultOps(ops))
	if err != nil {
		return nil, 0, fmt.Errorf("em: best patches: %w", err)
	}
	defer lj.Close()
	uh, uw := cfg.Positions()
	u := uh * uw
	type hit struct {
		score float64
		img   int
		pos   int
	}
	best := make([][]hit, cfg.Kernels) // the top images of each kernel
	_, sc, sh, sw := src.Shape()
	in := make([]float32, batch*sc*sh*sw)
	out := make([]float32, batch*lj.Len())
	params := s.Params(l + 1)
	for first := 0; first < count; first += batch {
		size := min(batch, count-first)
		if err := src.Read(in[:size*sc*sh*sw], first); err != nil {
			return nil, 0, fmt.Errorf("em: best patches: %w", err)
		}
		x := tensor.New(tensor.WithShape(stages[0].Config.ImageShape(size)...), tensor.WithBacking(in[:size*sc*sh*sw]))
		o := out[:size*lj.Len()]
		if err := lj.RunInto(o, x, params); err != nil {
			return nil, 0, fmt.Errorf("em: best patches: %w", err)
		}
		for i := 0; i < size; i++ {
			for k := 0; k < cfg.Kernels; k++ {
				m := o[(i*cfg.Kernels+k)*u : (i*cfg.Kernels+k+1)*u]
				pos := 0
				for p, v := range m {
					if v > m[pos] {
						pos = p
					}
				}
				hs := append(best[k], hit{float64(m[pos]), first + i, pos})
				for j := len(hs) - 1; j > 0 && hs[j].score > hs[j-1].score; j-- {
					hs[j], hs[j-1] = hs[j-1], hs[j]
				}
				best[k] = hs[:min(len(hs), top)]
			}
		}
	}
	_, c, h, w := pixels.Shape()
	pix := make([]float32, count*c*h*w)
	if err := pixels.Read(pix, 0); err != nil {
		return nil, 0, fmt.Errorf("em: best patches: %w", err)
	}
	y0, y1 := s.ReceptiveField(l, 0)
	side = y1 - y0 + 1
	shown = min(shown, cfg.Kernels)
	tiles = make([]float32, shown*c*side*side)
	for k := 0; k < shown; k++ {
		for _, b := range best[k] {
			ry, _ := s.ReceptiveField(l, b.pos/uw)
			rx, _ := s.ReceptiveField(l, b.pos%uw)
			for ch := 0; ch < c; ch++ {
				for y := 0; y < side; y++ {
					for x := 0; x < side; x++ {
						if yy, xx := ry+y, rx+x; yy >= 0 && yy < h && xx >= 0 && xx < w {
							tiles[((k*c+ch)*side+y)*side+x] += pix[((b.img*c+ch)*h+yy)*w+xx] / float32(len(best[k]))
						}
					}
				}
			}
		}
	}
	return tiles, side, nil
}
