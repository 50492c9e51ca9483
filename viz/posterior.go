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
	Channels   int       // of the image and the kernel: 1 (grey; 0 reads as 1) or 3 (RGB)
	Image      []float32 // Channels×Rows×Cols
	Rows, Cols int
	Kernel     []float32 // Channels×Width×Width, the most probable kernel as it filters the image
	Width      int
	Index      int       // the kernel's index
	Prob       float64   // its posterior mass Σ_u γ[k,u]: a probability, or under the patch model the patches it explains
	PerPatch   bool      // the patch model's posterior (each position's sums to 1)
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
		c := max(r.Channels, 1)
		if c != 1 && c != 3 || len(r.Image) != c*r.Rows*r.Cols || len(r.Kernel) != c*r.Width*r.Width || len(r.Positions) != r.Uh*r.Uw {
			return fmt.Errorf("viz: posterior row %d: sizes do not match their shapes (1 or 3 channels)", i)
		}
		heat := moreland.ExtendedBlackBody()
		var hi float32
		for _, v := range r.Positions {
			hi = max(hi, v)
		}
		heat.SetMin(0)
		heat.SetMax(float64(max(hi, 1e-30)))
		plots[i] = []*plot.Plot{
			tile(fmt.Sprintf("image %d", i+1), picture(r.Image, c, r.Rows, r.Cols)),
			tile(kernelTitle(r), picture(r.Kernel, c, r.Width, r.Width)),
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
// kernelTitle names the kernel of a row and its posterior mass.
func kernelTitle(r Posterior) string {
	if r.PerPatch {
		return fmt.Sprintf("kernel %d (%.1f of %d patches)", r.Index, r.Prob, r.Uh*r.Uw)
	}
	return fmt.Sprintf("kernel %d (p = %.2f)", r.Index, r.Prob)
}

// picture draws c channels of h×w values: grey for one, RGB for three,
// each scaled over the range of all its values.
func picture(v []float32, c, h, w int) image.Image {
	if c == 1 {
		return grey(v, h, w)
	}
	scale := rangeScale(v)
	idx := make([]float32, h*w)
	for i := range idx {
		idx[i] = float32(i)
	}
	return mapped(idx, h, w, func(x float32) color.Color {
		i := int(x)
		return color.RGBA{scale(v[i]), scale(v[h*w+i]), scale(v[2*h*w+i]), 255}
	})
}

func grey(v []float32, h, w int) image.Image {
	scale := rangeScale(v)
	return mapped(v, h, w, func(x float32) color.Color { return color.Gray{scale(x)} })
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
