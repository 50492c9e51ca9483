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
	pix := make([]float32, count*c*h*w)
	if err := src.Read(pix, 0); err != nil {
		return fmt.Errorf("experiment: posterior figure: %w", err)
	}
	r, err := e.Run(tensor.New(tensor.WithShape(count, c, h, w), tensor.WithBacking(pix)), res.Theta)
	if err != nil {
		return fmt.Errorf("experiment: posterior figure: %w", err)
	}
	post := r.Posterior.Data().([]float32)
	theta := res.Theta.Data().([]float32)
	uh, uw := cfg.Positions()
	u, size := uh*uw, cfg.Size
	var rows []viz.Posterior
	for i := 0; i < count; i++ {
		best, bestP := 0, -1.0
		for k := 0; k < cfg.Kernels; k++ {
			var p float64
			for _, v := range post[(i*cfg.Kernels+k)*u : (i*cfg.Kernels+k+1)*u] {
				p += float64(v)
			}
			if p > bestP {
				best, bestP = k, p
			}
		}
		pos := make([]float32, u)
		for j, v := range post[(i*cfg.Kernels+best)*u : (i*cfg.Kernels+best+1)*u] {
			pos[j] = float32(float64(v) / bestP)
		}
		rows = append(rows, viz.Posterior{
			Image: pix[i*h*w : (i+1)*h*w], H: h, W: w,
			Kernel: theta[best*size*size : (best+1)*size*size], Size: size, Index: best, Prob: bestP,
			Positions: pos, Uh: uh, Uw: uw,
		})
	}
	return viz.SavePosterior(path, rows)
}
