package viz_test

import (
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"calm/viz"
)

// TestKernelGridPixels plants kernels with known values and reads the grid
// image back: each tile is scaled to its own min (black) and max (white).
func TestKernelGridPixels(t *testing.T) {
	// Two 2×2 grey kernels with different ranges, in a grid 1 tile wide.
	theta := []float32{
		-1, 0, 1, 3, // kernel 0: min −1, max 3
		10, 10, 10, 20, // kernel 1: min 10, max 20
	}
	g, err := viz.NewKernelGrid(theta, 2, 1, 2, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if g.Cols != 1 || g.Rows != 2 {
		t.Fatalf("grid %d×%d, want 1×2", g.Cols, g.Rows)
	}
	img := g.Image()
	// Tiles start 6 pixels in and are 8 pixels per kernel pixel, 6 apart.
	at := func(tileRow, y, x int) uint8 {
		r, _, _, _ := img.At(6+x*8+3, 6+tileRow*(2*8+6)+y*8+3).RGBA()
		return uint8(r >> 8)
	}
	cases := []struct {
		name       string
		tile, y, x int
		want       uint8
	}{
		{"kernel 0 min", 0, 0, 0, 0},
		{"kernel 0 value 0", 0, 0, 1, 64}, // (0+1)/4·255 = 63.75
		{"kernel 0 max", 0, 1, 1, 255},
		{"kernel 1 min", 1, 0, 0, 0},
		{"kernel 1 max", 1, 1, 1, 255},
	}
	for _, tc := range cases {
		if got := at(tc.tile, tc.y, tc.x); got != tc.want {
			t.Errorf("%s: grey %d, want %d", tc.name, got, tc.want)
		}
	}
	if r, g, b, _ := img.At(2, 2).RGBA(); r != 0xffff || g != 0xffff || b != 0xffff {
		t.Errorf("gap pixel is %v %v %v, want white", r, g, b)
	}
}

func TestKernelGridRGB(t *testing.T) {
	// One 1×1 kernel of 3 channels: R at the min, G in the middle, B at the max.
	g, err := viz.NewKernelGrid([]float32{0, 1, 2}, 1, 3, 1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := color.RGBAModel.Convert(g.Image().At(9, 9)).(color.RGBA)
	if want := (color.RGBA{0, 128, 255, 255}); got != want {
		t.Errorf("RGB kernel pixel %v, want %v", got, want)
	}
}

func TestKernelGridRejects(t *testing.T) {
	for name, f := range map[string]func() error{
		"NaN": func() error {
			_, err := viz.NewKernelGrid([]float32{0, float32(math.NaN()), 1, 2}, 1, 1, 2, 1, 1)
			return err
		},
		"2 channels": func() error { _, err := viz.NewKernelGrid(make([]float32, 8), 1, 2, 2, 1, 1); return err },
		"short":      func() error { _, err := viz.NewKernelGrid(make([]float32, 3), 1, 1, 2, 1, 1); return err },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSave writes each figure and decodes it back as a PNG.
func TestSave(t *testing.T) {
	dir := t.TempDir()
	theta := make([]float32, 4*1*3*3)
	for i := range theta {
		theta[i] = float32(i % 7)
	}
	pos := make([]float32, 4)
	pos[2] = 1
	for name, save := range map[string]func(string) error{
		"kernels.png": func(p string) error { return viz.SaveKernels(p, "kernels", theta, 4, 1, 3, 4, 2) },
		"loglik.png": func(p string) error {
			return viz.SaveLogLik(p, "LL", viz.Curve{Name: "layer 1", LogLik: []float64{-10, 5, 6}}, viz.Curve{Name: "layer 2", LogLik: []float64{-3e7, 9.6e7, 9.8e7, 9.7e7}})
		},
		"one-epoch.png": func(p string) error {
			return viz.SaveLogLik(p, "LL", viz.Curve{Name: "layer 1", LogLik: []float64{-10}})
		},
		"two-epochs.png": func(p string) error {
			return viz.SaveLogLik(p, "LL", viz.Curve{Name: "layer 1", LogLik: []float64{-10, 5}})
		},
		"trained.png": func(p string) error {
			return viz.SaveLogLik(p, "LL", viz.Curve{Name: "layer 1", LogLik: []float64{-10, 5}, Trained: true},
				viz.Curve{Name: "layer 2", LogLik: []float64{8, 9, 9.5}, Trained: true})
		},
		"epochs.png": func(p string) error {
			return viz.SaveEpochs(p, "epochs", viz.EpochCurve{Name: "layer 1", Epochs: []int{0, 1, 2}, Accuracy: []float64{0.98, 0.99, 0.985},
				LogLik: []float64{1e6, 2e6, 2.1e6}, Trained: true})
		},
		"labels.png": func(p string) error {
			return viz.SaveLabels(p, "labels", viz.Series{Name: "lse3", Labels: []int{100, 1000, 60000}, Accuracy: []float64{0.7, 0.9, 0.98}},
				viz.Series{Name: "pixels", Labels: []int{100, 1000, 60000}, Accuracy: []float64{0.6, 0.85, 0.92}})
		},
		"posterior.png": func(p string) error {
			return viz.SavePosterior(p, []viz.Posterior{{Image: make([]float32, 16), Rows: 4, Cols: 4,
				Kernel: theta[:9], Width: 3, Index: 0, Prob: 0.9, Positions: pos, Uh: 2, Uw: 2}})
		},
	} {
		path := filepath.Join(dir, name)
		if err := save(path); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 50 || b.Dy() < 50 {
			t.Errorf("%s: %v, too small", name, b)
		}
	}
	if err := viz.SaveLogLik(filepath.Join(dir, "bad.png"), "", viz.Curve{Name: "x", LogLik: []float64{1, math.NaN()}}); err == nil {
		t.Error("NaN log-likelihood plotted")
	}
	if err := viz.SaveLabels(filepath.Join(dir, "bad.png"), "", viz.Series{Name: "x", Labels: []int{10}, Accuracy: []float64{1.5}}); err == nil {
		t.Error("an accuracy of 150 % plotted")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.png")); !os.IsNotExist(err) {
		t.Error("a failed save left a file behind")
	}
}

// TestPosteriorColour draws a red image and a blue kernel in colour and
// finds both colours in the figure; a row of 2 channels is refused.
func TestPosteriorColour(t *testing.T) {
	const side, w = 6, 3
	img := make([]float32, 3*side*side)
	for i := 0; i < side*side; i++ {
		img[i] = 1 // red
	}
	ker := make([]float32, 3*w*w)
	for i := 0; i < w*w; i++ {
		ker[2*w*w+i] = 1 // blue
	}
	row := viz.Posterior{Channels: 3, Image: img, Rows: side, Cols: side, Kernel: ker, Width: w, Prob: 1, Positions: []float32{0, 1, 0, 0}, Uh: 2, Uw: 2}
	path := filepath.Join(t.TempDir(), "posterior.png")
	if err := viz.SavePosterior(path, []viz.Posterior{row}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pic, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var red, blue bool
	b := pic.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := pic.At(x, y).RGBA()
			red = red || r > 0xf000 && g < 0x1000 && bl < 0x1000
			blue = blue || bl > 0xf000 && r < 0x1000 && g < 0x1000
		}
	}
	if !red || !blue {
		t.Errorf("red image drawn: %v, blue kernel drawn: %v", red, blue)
	}
	row.Channels = 2
	if err := viz.SavePosterior(filepath.Join(t.TempDir(), "bad.png"), []viz.Posterior{row}); err == nil {
		t.Error("a row of 2 channels drawn")
	}
}
