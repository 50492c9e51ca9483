package imagefolder_test

import (
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"calm/imagefolder"
)

// write saves img at path as PNG or JPEG (by extension).
func write(t *testing.T, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".jpg") {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 100})
	} else {
		err = png.Encode(f, img)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// grey returns a w×h grey image whose pixel (x,y) is v(x,y).
func grey(w, h int, v func(x, y int) uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			g.SetGray(x, y, color.Gray{Y: v(x, y)})
		}
	}
	return g
}

// TestOpen writes two classes of 6×5 images (PNG and JPEG, grey and
// colour) and checks the order, the labels and the pixels: a grey PNG's
// values v/255 exactly, a colour JPEG's planes close to what was written.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cats", "b.png"), grey(6, 5, func(x, y int) uint8 { return uint8(10*x + y) }))
	write(t, filepath.Join(dir, "cats", "a.png"), grey(6, 5, func(x, y int) uint8 { return 200 }))
	rgb := image.NewRGBA(image.Rect(0, 0, 6, 5))
	for i := range rgb.Pix {
		rgb.Pix[i] = []uint8{200, 100, 50, 255}[i%4]
	}
	write(t, filepath.Join(dir, "dogs", "c.jpg"), rgb)
	os.WriteFile(filepath.Join(dir, "dogs", "notes.txt"), []byte("not an image"), 0o666)

	s, err := imagefolder.Open(dir, imagefolder.Options{Channels: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Classes, []string{"cats", "dogs"}) || !slices.Equal(s.Labels, []byte{0, 0, 1}) || filepath.Base(s.Paths[0]) != "a.png" {
		t.Fatalf("classes %v, labels %v, paths %v", s.Classes, s.Labels, s.Paths)
	}
	if n, c, h, w := s.Shape(); n != 3 || c != 1 || h != 5 || w != 6 {
		t.Fatalf("shape %d×%d×%d×%d", n, c, h, w)
	}
	px := make([]float32, 3*30)
	if err := s.Read(px, 0); err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 5; y++ {
		for x := 0; x < 6; x++ {
			if got, want := px[30+y*6+x], float32(10*x+y)/255; got != want {
				t.Fatalf("b.png (%d,%d): %v, want %v", x, y, got, want)
			}
		}
	}
	// Luminance of (200, 100, 50): 0.299·200 + 0.587·100 + 0.114·50 = 124.2;
	// JPEG moves a value by a few levels at quality 100.
	if got := px[60]; math.Abs(float64(got)-124.2/255) > 4.0/255 {
		t.Errorf("c.jpg in grey: %v, want about %v", got, 124.2/255)
	}
	s3, err := imagefolder.Open(dir, imagefolder.Options{Channels: 3})
	if err != nil {
		t.Fatal(err)
	}
	px3 := make([]float32, 90)
	if err := s3.Read(px3, 2); err != nil {
		t.Fatal(err)
	}
	for c, want := range []float64{200, 100, 50} {
		if got := px3[c*30+7]; math.Abs(float64(got)-want/255) > 4.0/255 {
			t.Errorf("c.jpg channel %d: %v, want about %v", c, got, want/255)
		}
	}
}

// TestBadFolders checks each way a folder can be wrong: a corrupt file (an
// error naming it, or skipped and counted with SkipBad), a truncated PNG,
// mixed sizes without Size, an empty class folder, no images at all.
func TestBadFolders(t *testing.T) {
	good := func(dir string) {
		write(t, filepath.Join(dir, "0", "a.png"), grey(4, 4, func(x, y int) uint8 { return 1 }))
		write(t, filepath.Join(dir, "1", "b.png"), grey(4, 4, func(x, y int) uint8 { return 2 }))
	}
	truncated := func(t *testing.T, path string) {
		write(t, path, grey(4, 4, func(x, y int) uint8 { return 3 }))
		b, _ := os.ReadFile(path)
		os.WriteFile(path, b[:len(b)/2], 0o666)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"corrupt file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "1", "bad.png"), []byte("not a png"), 0o666)
		}, "bad.png"},
		{"truncated png", func(t *testing.T, dir string) { truncated(t, filepath.Join(dir, "0", "cut.png")) }, "cut.png"},
		{"mixed sizes", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "1", "c.png"), grey(5, 4, func(x, y int) uint8 { return 1 }))
		}, "-size"},
		{"empty class", func(t *testing.T, dir string) { os.MkdirAll(filepath.Join(dir, "2"), 0o777) }, "no images"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			good(dir)
			tc.setup(t, dir)
			_, err := imagefolder.Open(dir, imagefolder.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line saying %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	good(dir)
	os.WriteFile(filepath.Join(dir, "1", "bad.png"), []byte("not a png"), 0o666)
	s, err := imagefolder.Open(dir, imagefolder.Options{SkipBad: true})
	if err != nil || len(s.Paths) != 2 || len(s.Skipped) != 1 || !slices.Equal(s.Labels, []byte{0, 1}) {
		t.Errorf("SkipBad: %v, %+v", err, s)
	}
	if _, err := imagefolder.Open(t.TempDir(), imagefolder.Options{}); !errors.Is(err, imagefolder.ErrNoImages) {
		t.Errorf("empty folder: %v, want ErrNoImages", err)
	}
}

// TestResize checks the documented resampling: the shorter side to Size,
// the centre cut out. A constant 9×6 image stays constant; a 9×6 image
// with a white vertical band in its middle third becomes, at Size 3, the
// centre 3×3 of its 5×3 scaling: bright in the middle.
func TestResize(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "flat.png"), grey(9, 6, func(x, y int) uint8 { return 51 }))
	write(t, filepath.Join(dir, "wide.png"), grey(9, 6, func(x, y int) uint8 {
		if x >= 3 && x < 6 {
			return 255
		}
		return 0
	}))
	s, err := imagefolder.Open(dir, imagefolder.Options{Size: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s.Labels != nil {
		t.Errorf("labels %v for a folder of images, want none", s.Labels)
	}
	px := make([]float32, 2*9)
	if err := s.Read(px, 0); err != nil {
		t.Fatal(err)
	}
	for i, v := range px[:9] {
		if math.Abs(float64(v)-0.2) > 1e-3 {
			t.Errorf("flat.png pixel %d: %v, want 0.2", i, v)
		}
	}
	// 9×6 → 5×3 (shorter side 3), centre 3×3: columns 1–3 of the scaled
	// image, the white band's middle brighter than its edges.
	for y := 0; y < 3; y++ {
		if mid, edge := px[9+y*3+1], px[9+y*3]; !(mid > 0.9 && edge < mid) {
			t.Errorf("wide.png row %d: %v, want a bright middle", y, px[9+y*3:9+y*3+3])
		}
	}
}
