package experiment

import (
	"fmt"

	"calm/em"
	"calm/estep"
	"calm/graph"
	"calm/viz"

	"gorgonia.org/tensor"
)

// savePosterior draws, for the first count images of src, the image, its
// most probable kernel and that kernel's posterior over positions.
func savePosterior(path string, src em.Source, res *em.Result, ops graph.Ops, count int) error {
	n, c, h, w := src.Shape()
	count = min(count, n)
	cfg := res.Config
	cfg.Batch = count
	e, err := estep.New(cfg, ops)
	if err != nil {
		return fmt.Errorf("experiment: posterior figure: %w", err)
	}
	defer e.Close()
	pix := make([]float32, count*c*h*w)
	if err := src.Read(pix, 0); err != nil {
		return fmt.Errorf("experiment: posterior figure: %w", err)
	}
	r, err := e.Run(tensor.New(tensor.WithShape(cfg.ImageShape(count)...), tensor.WithBacking(pix)), res.Theta, res.LogPrior)
	if err != nil {
		return fmt.Errorf("experiment: posterior figure: %w", err)
	}
	post := r.Posterior.Data().([]float32)
	theta := res.Theta.Data().([]float32)
	uh, uw := cfg.Positions()
	u, d := uh*uw, cfg.KernelLen()
	var rows []viz.Posterior
	for i := 0; i < count; i++ {
		p := post[i*cfg.Kernels*u : (i+1)*cfg.Kernels*u]
		best, mass := estep.MostProbable(p, cfg.Kernels, u)
		pos := make([]float32, u)
		for j, v := range p[best*u : (best+1)*u] {
			pos[j] = float32(float64(v) / mass)
		}
		rows = append(rows, viz.Posterior{
			Image: pix[i*h*w : (i+1)*h*w], Rows: h, Cols: w,
			Kernel: theta[best*d : best*d+cfg.Width*cfg.Width], Width: cfg.Width, Index: best, Prob: mass,
			Positions: pos, Uh: uh, Uw: uw,
		})
	}
	return viz.SavePosterior(path, rows)
}

// receptiveField returns the rows (or, the same way, the columns) of
// pixels that position u of layer l's positions (0-based) sees: a kernel
// of layer l at u covers its input's rows u−p … u−p+w−1, each a window of
// Pool positions of the layer below when that layer's transform pools, and
// so on down to the image.
func receptiveField(st *em.Stack, l, u int) (lo, hi int) {
	lo, hi = u, u
	for j := l; j >= 0; j-- {
		cfg := st.Layers[j].Config
		lo, hi = lo-cfg.Pad, hi-cfg.Pad+cfg.Width-1 // rows of layer j's input
		if j > 0 {
			if pool := st.Layers[j-1].Transform.Pool; pool > 1 {
				lo, hi = lo*pool, hi*pool+pool-1 // positions of layer j−1
			}
		}
	}
	return lo, hi
}

// saveReceptiveFields draws what each kernel of layer l (0-based, l ≥ 1)
// responds to: over the first test images, the mean of the pixel patches
// (its receptive field) at the positions where its log joint is highest,
// the best position of each of the images it fits best.
func saveReceptiveFields(path string, d Data, st *em.Stack, l int, ops graph.Ops) error {
	const images, top = 2000, 9
	n, c, h, w := d.Test.Shape()
	count := min(n, images)
	cfg := st.Layers[l].Config
	batch := min(count, 250)
	stages := st.Stages(l+1, batch)
	lj, err := estep.NewStackLogJoint(stages, ops)
	if err != nil {
		return fmt.Errorf("experiment: receptive fields: %w", err)
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
	pix := make([]float32, count*c*h*w)
	if err := d.Test.Read(pix, 0); err != nil {
		return fmt.Errorf("experiment: receptive fields: %w", err)
	}
	out := make([]float32, batch*lj.Len())
	params := st.Params(l + 1)
	for first := 0; first < count; first += batch {
		size := min(batch, count-first)
		x := tensor.New(tensor.WithShape(stages[0].Config.ImageShape(size)...), tensor.WithBacking(pix[first*c*h*w:(first+size)*c*h*w]))
		o := out[:size*lj.Len()]
		if err := lj.RunInto(o, x, params); err != nil {
			return fmt.Errorf("experiment: receptive fields: %w", err)
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
	y0, y1 := receptiveField(st, l, 0)
	side := y1 - y0 + 1
	shown := min(64, cfg.Kernels)
	tiles := make([]float32, shown*c*side*side)
	for k := 0; k < shown; k++ {
		for _, b := range best[k] {
			ry, _ := receptiveField(st, l, b.pos/uw)
			rx, _ := receptiveField(st, l, b.pos%uw)
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
	title := fmt.Sprintf("%s: layer %d, first %d of %d kernels: mean of the %d test patches each fits best (%d×%d pixels)",
		d.Name, l+1, shown, cfg.Kernels, top, side, side)
	return viz.SaveKernels(path, title, tiles, shown, c, side, 64, 8)
}
