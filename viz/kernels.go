package viz

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"math"

	"calm/internal/atomicfile"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// KernelGrid draws kernels (K,C,w,w) as a grid of tiles, Cols wide, each
// kernel scaled to its own minimum (black) and maximum (white). One channel
// is drawn in grey, three as RGB (each channel scaled with the kernel's
// common min–max).
type KernelGrid struct {
	Cols, Rows int
	img        *image.RGBA
}

// Pixel and gap sizes of the grid image, in image pixels per kernel pixel.
const (
	tileZoom = 8
	tileGap  = 6
)

// NewKernelGrid returns the grid of the first n kernels of θ (K,C,w,w,
// row-major), cols tiles wide. C must be 1 or 3; every value must be finite.
func NewKernelGrid(theta []float32, k, c, w, n, cols int) (*KernelGrid, error) {
	switch {
	case k < 1 || w < 1 || (c != 1 && c != 3) || len(theta) != k*c*w*w:
		return nil, fmt.Errorf("viz: %d values for %d kernels of %d×%d×%d (1 or 3 channels)", len(theta), k, c, w, w)
	case n < 1 || cols < 1:
		return nil, fmt.Errorf("viz: %d kernels in %d columns", n, cols)
	}
	n = min(n, k)
	for i, v := range theta[:n*c*w*w] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("viz: kernel %d holds %v", i/(c*w*w), v)
		}
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	side := w*tileZoom + tileGap
	img := image.NewRGBA(image.Rect(0, 0, cols*side+tileGap, rows*side+tileGap))
	for i := range img.Pix {
		img.Pix[i] = 255 // white background between tiles
	}
	for kk := 0; kk < n; kk++ {
		ker := theta[kk*c*w*w : (kk+1)*c*w*w]
		scale := rangeScale(ker)
		x0, y0 := tileGap+(kk%cols)*side, tileGap+(kk/cols)*side
		for y := 0; y < w; y++ {
			for x := 0; x < w; x++ {
				var px color.RGBA
				if c == 1 {
					g := scale(ker[y*w+x])
					px = color.RGBA{g, g, g, 255}
				} else {
					px = color.RGBA{scale(ker[y*w+x]), scale(ker[w*w+y*w+x]), scale(ker[2*w*w+y*w+x]), 255}
				}
				for dy := 0; dy < tileZoom; dy++ {
					for dx := 0; dx < tileZoom; dx++ {
						img.SetRGBA(x0+x*tileZoom+dx, y0+y*tileZoom+dy, px)
					}
				}
			}
		}
	}
	return &KernelGrid{Cols: cols, Rows: rows, img: img}, nil
}

// Image returns the grid as an image: tiles of 8×8 pixels per kernel pixel,
// 6 white pixels apart.
func (g *KernelGrid) Image() image.Image { return g.img }

// Plot implements plot.Plotter: the grid fills the data range [0,Cols]×[0,Rows].
func (g *KernelGrid) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	b := g.img.Bounds()
	c.DrawImage(vg.Rectangle{
		Min: vg.Point{X: trX(0), Y: trY(0)},
		Max: vg.Point{X: trX(float64(b.Dx())), Y: trY(float64(b.Dy()))},
	}, g.img)
}

// DataRange implements plot.DataRanger: one unit per image pixel.
func (g *KernelGrid) DataRange() (xmin, xmax, ymin, ymax float64) {
	b := g.img.Bounds()
	return 0, float64(b.Dx()), 0, float64(b.Dy())
}

// SaveKernels writes the grid of the first n kernels of θ (K,C,w,w), cols
// wide, as a PNG with a title.
func SaveKernels(path, title string, theta []float32, k, c, w, n, cols int) error {
	g, err := NewKernelGrid(theta, k, c, w, n, cols)
	if err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = title
	p.HideAxes()
	p.X.Padding, p.Y.Padding = 0, 0
	p.Add(g)
	b := g.img.Bounds()
	// Size the figure so each image pixel is one output pixel (at 96 dpi)
	// plus room for the title.
	width := vg.Length(b.Dx()) * vg.Inch / 96
	height := vg.Length(b.Dy())*vg.Inch/96 + 30
	return savePlot(path, p, width, height)
}

func savePlot(path string, p *plot.Plot, w, h vg.Length) error {
	wt, err := p.WriterTo(w, h, "png")
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := wt.WriteTo(w); return err }); err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	return nil
}

// rangeScale returns the map of the range of v onto the bytes 0…255 (a v
// of one value maps to 128): each picture of a figure shows its values
// against their own range.
func rangeScale(v []float32) func(float32) uint8 {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return func(x float32) uint8 {
		if hi == lo {
			return 128
		}
		return uint8(math.Round(float64((x - lo) / (hi - lo) * 255)))
	}
}
