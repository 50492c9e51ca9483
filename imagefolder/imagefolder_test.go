package imagefolder_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
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

// TestFormats reads images in the formats a folder may hold that are not
// 8-bit RGB: 16-bit PNG (grey and colour), paletted PNG, grey with alpha
// (composited over black, each value times its alpha), CMYK JPEG and
// progressive JPEG, each to the values its pixels stand for.
func TestFormats(t *testing.T) {
	dir := t.TempDir()
	g16 := image.NewGray16(image.Rect(0, 0, 8, 8))
	rgb16 := image.NewRGBA64(image.Rect(0, 0, 8, 8))
	pal := image.NewPaletted(image.Rect(0, 0, 8, 8), color.Palette{color.RGBA{10, 20, 30, 255}, color.RGBA{250, 128, 0, 255}})
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			g16.SetGray16(x, y, color.Gray16{Y: uint16(1000*x + 7*y + 1)})
			rgb16.SetRGBA64(x, y, color.RGBA64{R: uint16(8000 * x), G: uint16(300 * y), B: 65535, A: 65535})
			pal.SetColorIndex(x, y, uint8((x+y)%2))
		}
	}
	write(t, filepath.Join(dir, "grey16", "a.png"), g16)
	write(t, filepath.Join(dir, "rgb16", "a.png"), rgb16)
	write(t, filepath.Join(dir, "paletted", "a.png"), pal)
	// quadrant returns the value of a file of testdata's four flat
	// quadrants (testdata/README.md) at (x, y).
	quadrant := func(v [4]float64) func(x, y int) float64 {
		return func(x, y int) float64 {
			q := 0
			if x >= 4 {
				q++
			}
			if y >= 4 {
				q += 2
			}
			return v[q]
		}
	}
	for _, c := range []struct {
		name     string
		path     string
		channels int
		want     [3]func(x, y int) float64 // each plane at (x, y)
		tol      float64
	}{
		{name: "16-bit grey", path: filepath.Join(dir, "grey16", "a.png"), channels: 1, tol: 0,
			want: [3]func(x, y int) float64{func(x, y int) float64 { return float64(1000*x+7*y+1) / 65535 }}},
		{name: "16-bit colour", path: filepath.Join(dir, "rgb16", "a.png"), channels: 3, tol: 0, want: [3]func(x, y int) float64{
			func(x, y int) float64 { return float64(8000*x) / 65535 },
			func(x, y int) float64 { return float64(300*y) / 65535 },
			func(x, y int) float64 { return 1 }}},
		{name: "paletted", path: filepath.Join(dir, "paletted", "a.png"), channels: 3, tol: 0, want: [3]func(x, y int) float64{
			func(x, y int) float64 { return []float64{10, 250}[(x+y)%2] / 255 },
			func(x, y int) float64 { return []float64{20, 128}[(x+y)%2] / 255 },
			func(x, y int) float64 { return []float64{30, 0}[(x+y)%2] / 255 }}},
		// Premultiplied in 16 bits: within a 16-bit level of g·a.
		{name: "grey with alpha", path: "testdata/grey-alpha.png", channels: 1, tol: 1.0 / 65535, want: [3]func(x, y int) float64{
			quadrant([4]float64{200.0 / 255, 200.0 / 255 * 128 / 255, 60.0 / 255, 0})}},
		// CMYK (C,M,Y,K) stands for R = (1−C)(1−K), …; JPEG keeps flat
		// quadrants within a few levels.
		{name: "CMYK JPEG", path: "testdata/cmyk.jpg", channels: 3, tol: 4.0 / 255, want: [3]func(x, y int) float64{
			quadrant([4]float64{1, 0, 1, 127.0 / 255}),
			quadrant([4]float64{1, 1, 127.0 / 255, 127.0 / 255}),
			quadrant([4]float64{1, 1, 0, 127.0 / 255})}},
		// Saturated colours lose more to the halved chroma resolution;
		// the baseline file's pixels are checked exactly below.
		{name: "progressive JPEG", path: "testdata/progressive.jpg", channels: 3, tol: 16.0 / 255, want: [3]func(x, y int) float64{
			quadrant([4]float64{250.0 / 255, 10.0 / 255, 10.0 / 255, 128.0 / 255}),
			quadrant([4]float64{10.0 / 255, 250.0 / 255, 10.0 / 255, 128.0 / 255}),
			quadrant([4]float64{10.0 / 255, 10.0 / 255, 250.0 / 255, 128.0 / 255})}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := readOne(t, c.path, c.channels)
			for ch := 0; ch < c.channels; ch++ {
				for y := 0; y < 8; y++ {
					for x := 0; x < 8; x++ {
						// 16-bit values come through float32: one rounding.
						g, w := float64(got[(ch*8+y)*8+x]), c.want[ch](x, y)
						if math.Abs(g-w) > c.tol+1e-7 {
							t.Fatalf("channel %d (%d,%d) = %v, want %v", ch, x, y, g, w)
						}
					}
				}
			}
		})
	}
	// The progressive file holds the baseline file's coefficients: the
	// same pixels exactly.
	prog, base := readOne(t, "testdata/progressive.jpg", 3), readOne(t, "testdata/baseline.jpg", 3)
	if !slices.Equal(prog, base) {
		t.Error("the progressive JPEG decodes to other pixels than the baseline one of the same image")
	}
}

// readOne returns the pixels of the one image file at path, read through
// a Set of its own folder.
func readOne(t *testing.T, path string, channels int) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := imagefolder.Open(dir, imagefolder.Options{Channels: channels})
	if err != nil {
		t.Fatal(err)
	}
	n, c, h, w := s.Shape()
	got := make([]float32, n*c*h*w)
	if err := s.Read(got, 0); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTooLarge: a PNG whose header declares 30 000 × 30 000 RGBA pixels
// (3.6 GB decoded) is refused from its header, naming the file and its
// size, with next to nothing allocated; a lower MaxPixels refuses a small
// image the same way.
func TestTooLarge(t *testing.T) {
	dir := t.TempDir()
	bomb := filepath.Join(dir, "cats", "bomb.png")
	if err := os.MkdirAll(filepath.Dir(bomb), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bomb, pngHeader(30000, 30000), 0o644); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := imagefolder.Open(dir, imagefolder.Options{})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, imagefolder.ErrTooLarge) || !strings.Contains(err.Error(), bomb) || !strings.Contains(err.Error(), "30000×30000") {
		t.Errorf("got %v, want ErrTooLarge naming %s and its 30000×30000 pixels", err, bomb)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("refusing the image allocated %d bytes", alloc)
	}
	small := filepath.Join(t.TempDir(), "a.png")
	write(t, small, grey(20, 10, func(x, y int) uint8 { return 1 }))
	if _, err := imagefolder.Open(filepath.Dir(small), imagefolder.Options{MaxPixels: 199}); !errors.Is(err, imagefolder.ErrTooLarge) {
		t.Errorf("a 20×10 image under a limit of 199 pixels: %v, want ErrTooLarge", err)
	}
}

// pngHeader returns a PNG file that declares a w×h RGBA image: the
// signature and the IHDR chunk, then a few bytes of image data and the
// end, as a decompression bomb's first bytes would be.
func pngHeader(w, h uint32) []byte {
	chunk := func(kind string, data []byte) []byte {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		b = append(b, kind...)
		b = append(b, data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(kind), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8 bits, RGBA, deflate, no filter, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00})...)
	return append(out, chunk("IEND", nil)...)
}
