package experiment

import (
	"fmt"

	"calm/dataset"
	"calm/em"
	"calm/graph"
	"calm/viz"
)

// savePosterior draws, for the first count images of src (layer 1's input,
// whitened by wh if it is not nil), the image as it was read (the same
// image of shown), its most probable kernel (as the filter it applies to
// the image) and that kernel's posterior over positions.
func savePosterior(path string, src, shown dataset.Source, res *em.Result, wh *em.Whitening, ops graph.Ops, count int) error {
	rs, _, err := em.Responsibilities(src, res, ops, count)
	if err != nil {
		return err
	}
	_, c, h, w := shown.Shape()
	pix := make([]float32, len(rs)*c*h*w)
	if err := shown.Read(pix, 0); err != nil {
		return fmt.Errorf("experiment: posterior figure: %w", err)
	}
	cfg := res.Config
	uh, uw := cfg.Positions()
	theta := res.Theta.Data().([]float32)
	var rows []viz.Posterior
	for i, r := range rs {
		kernel, side := theta[r.Kernel*cfg.KernelLen():(r.Kernel+1)*cfg.KernelLen()], cfg.Width
		if wh != nil {
			// A kernel of whitened images, as the filter it applies to them.
			if kernel, side, err = wh.ImageFilters(kernel, 1, cfg.Width); err != nil {
				return err
			}
		}
		rows = append(rows, viz.Posterior{
			Channels: c, Image: pix[i*c*h*w : (i+1)*c*h*w], Rows: h, Cols: w,
			Kernel: kernel, Width: side, Index: r.Kernel, Prob: r.Prob, PerPatch: cfg.Model == graph.PatchModel,
			Positions: r.Positions, Uh: uh, Uw: uw,
		})
	}
	return viz.SavePosterior(path, rows)
}
