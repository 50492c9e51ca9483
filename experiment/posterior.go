package experiment

import (
	"calm/dataset"
	"calm/em"
	"calm/graph"
	"calm/viz"
)

// savePosterior draws, for the first count images of src, the image, its
// most probable kernel and that kernel's posterior over positions.
func savePosterior(path string, src dataset.Source, res *em.Result, ops graph.Ops, count int) error {
	rs, pix, err := em.Responsibilities(src, res, ops, count)
	if err != nil {
		return err
	}
	_, _, h, w := src.Shape()
	cfg := res.Config
	uh, uw := cfg.Positions()
	theta := res.Theta.Data().([]float32)
	var rows []viz.Posterior
	for i, r := range rs {
		rows = append(rows, viz.Posterior{
			Image: pix[i*h*w : (i+1)*h*w], Rows: h, Cols: w,
			Kernel: theta[r.Kernel*cfg.KernelLen() : r.Kernel*cfg.KernelLen()+cfg.Width*cfg.Width], Width: cfg.Width, Index: r.Kernel, Prob: r.Prob,
			Positions: r.Positions, Uh: uh, Uw: uw,
		})
	}
	return viz.SavePosterior(path, rows)
}
