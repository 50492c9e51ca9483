package viz

import (
	"fmt"
	"image"
	"image/color"
	"io"

	"calm/internal/atomicfile"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Posterior is what the E-step sees of one grey image: the image, its most
// probable kernel and that kernel's posterior over positions.
type Posterior struct {
	Image      []float32 // Rows×Cols
	Rows, Cols int
	Kernel     []float32 // Width×Width, the most probable kernel
	Width      int
	Index      int       // the kernel's index
	Prob       float64   // its posterior probability Σ_u γ[k,u]
	Positions  []float32 // Uh×Uw: γ[k,u] / Σ_u γ[k,u]
	Uh, Uw     int
}

// SavePosterior writes one row per image: the image, its most probable
// kernel and the posterior over positions as a heat map.
func SavePosterior(path string, rows []Posterior) error {
	if len(rows) == 0 {
		return fmt.Errorf("viz: no images for the posterior figure")
	}
	plots := make([][]*plot.Plot, len(rows))
	for i, r := range rows {
		if len(r.Image) != r.Rows*r.Cols || len(r.Kernel) != r.Width*r.Width || len(r.Positions) != r.Uh*r.Uw {
			return fmt.Errorf("viz: posterior row %d: sizes do not match their shapes", i)
		}
		heat := moreland.ExtendedBlackBody()
		var hi float32
		for _, v := range r.Positions {
			hi = max(hi, v)
		}
		heat.SetMin(0)
		heat.SetMax(float64(max(hi, 1e-30)))
		plots[i] = []*plot.Plot{
			tile(fmt.Sprintf("image %d", i+1), grey(r.Image, r.Rows, r.Cols)),
			tile(fmt.Sprintf("kernel %d (p = %.2f)", r.Index, r.Prob), grey(r.Kernel, r.Width, r.Width)),
			tile("posterior over positions", mapped(r.Positions, r.Uh, r.Uw, func(v float32) color.Color {
				c, err := heat.At(float64(v))
				if err != nil {
					return color.Black
				}
				return c
			})),
		}
	}
	const cell = 1.6 * vg.Inch
	img := vgimg.New(3*cell, vg.Length(len(rows))*cell)
	dc := draw.New(img)
	canvases := plot.Align(plots, draw.Tiles{Rows: len(rows), Cols: 3, PadX: vg.Millimeter, PadY: vg.Millimeter}, dc)
	for i := range plots {
		for j, p := range plots[i] {
			p.Draw(canvases[i][j])
		}
	}
	return saveCanvas(path, img)
}

// saveCanvas writes img as a PNG.
func saveCanvas(path string, img *vgimg.Canvas) error {
	if err := atomicfile.Write(path, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	}); err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	return nil
}

func tile(title string, img image.Image) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(8)
	p.HideAxes()
	b := img.Bounds()
	p.Add(plotter.NewImage(img, 0, 0, float64(b.Dx()), float64(b.Dy())))
	return p
}

// grey maps v (h×w) to grey levels between its own min and max, each value
// a block of 8×8 pixels so the figure stays sharp when scaled.
func grey(v []float32, h, w int) image.Image {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return mapped(v, h, w, func(x float32) color.Color {
		if hi == lo {
			return color.Gray{128}
		}
		return color.Gray{uint8((x - lo) / (hi - lo) * 255)}
	})
}

func mapped(v []float32, h, w int, col func(float32) color.Color) image.Image {
	const zoom = 8
	img := image.NewRGBA(image.Rect(0, 0, w*zoom, h*zoom))
	for y := 0; y < h*zoom; y++ {
		for x := 0; x < w*zoom; x++ {
			img.Set(x, y, col(v[(y/zoom)*w+x/zoom]))
		}
	}
	return img
}
