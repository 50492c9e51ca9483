package experiment

import (
	"fmt"

	"calm/em"
	"calm/estep"
	"calm/viz"

	"gorgonia.org/tensor"
)

// savePosterior draws, for the first count images of src, the image, its
// most probable kernel and that kernel's posterior over positions.
func savePosterior(path string, src em.Source, res *em.Result, count int) error {
	n, c, h, w := src.Shape()
	count = min(count, n)
	cfg := res.Config
	cfg.Batch = count
	e, err := estep.New(cfg, res.Settings.Ops)
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
