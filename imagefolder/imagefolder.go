package imagefolder

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // decoders registered with image.Decode
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/image/draw"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// Options say how images become pixels.
type Options struct {
	Channels int  // 1 (grey) or 3 (RGB); default 1
	Size     int  // resize the shorter side to Size and cut out the centre Size×Size; 0: keep the size, which all images must share
	SkipBad  bool // skip files that do not decode instead of failing
	Workers  int  // images decoded at once; default GOMAXPROCS
	// MaxPixels refuses, from its header alone, a file that declares more
	// pixels than this, before anything is allocated for it; default
	// DefaultMaxPixels.
	MaxPixels int
}

// DefaultMaxPixels is Options.MaxPixels' default, Pillow's guard against
// decompression bombs: 89 478 485 pixels (a quarter of a gigabyte of
// 24-bit RGB), far above any image this project trains on.
const DefaultMaxPixels = 89478485

// ErrTooLarge is wrapped by the error of a file whose header declares more
// pixels than Options.MaxPixels.
var ErrTooLarge = errors.New("more pixels than allowed")

// Extensions are the file name extensions read as images (lower case).
var Extensions = []string{".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

// A Set is one split of a data set: its image files and their labels. It
// implements dataset.Source.
type Set struct {
	Paths   []string // the image files, in sorted order
	Labels  []byte   // the class of each image; nil for an unlabelled set
	Classes []string // the class folders' names, in label order
	Skipped []string // files that did not decode (Options.SkipBad)

	opt     Options
	rows    int
	cols    int
	workers int
}

// ErrNoImages is wrapped by the error of a folder that holds no image.
var ErrNoImages = errors.New("no images")

// Open reads the folder dir: class subfolders of images (a labelled set)
// or images (an unlabelled one), and decodes every image once to check it.
func Open(dir string, opt Options) (*Set, error) {
	if opt.Channels == 0 {
		opt.Channels = 1
	}
	if opt.Channels != 1 && opt.Channels != 3 {
		return nil, fmt.Errorf("imagefolder: %d channels: want 1 or 3", opt.Channels)
	}
	if opt.Size < 0 {
		return nil, fmt.Errorf("imagefolder: size %d: want 0 (keep) or more", opt.Size)
	}
	if opt.MaxPixels == 0 {
		opt.MaxPixels = DefaultMaxPixels
	}
	if opt.MaxPixels < 1 {
		return nil, fmt.Errorf("imagefolder: at most %d pixels an image: want 1 or more", opt.MaxPixels)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %w", err)
	}
	s := &Set{opt: opt, workers: opt.Workers}
	if s.workers <= 0 {
		s.workers = runtime.GOMAXPROCS(0)
	}
	var dirs []string
	for _, e := range entries {
		switch {
		case e.IsDir():
			dirs = append(dirs, e.Name())
		case isImage(e.Name()):
			s.Paths = append(s.Paths, filepath.Join(dir, e.Name()))
		}
	}
	switch {
	case len(dirs) > 0 && len(s.Paths) > 0:
		return nil, fmt.Errorf("imagefolder: %s holds both class folders and images (%s): want one or the other", dir, s.Paths[0])
	case len(dirs) > 255:
		return nil, fmt.Errorf("imagefolder: %s has %d class folders: at most 255", dir, len(dirs))
	}
	if len(dirs) > 0 {
		slices.Sort(dirs)
		s.Classes = dirs
		s.Labels = []byte{}
		for label, name := range dirs {
			files, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("imagefolder: %w", err)
			}
			n := len(s.Paths)
			for _, f := range files {
				if !f.IsDir() && isImage(f.Name()) {
					s.Paths = append(s.Paths, filepath.Join(dir, name, f.Name()))
					s.Labels = append(s.Labels, byte(label))
				}
			}
			if len(s.Paths) == n {
				return nil, fmt.Errorf("imagefolder: class folder %s: %w", filepath.Join(dir, name), ErrNoImages)
			}
		}
	}
	if len(s.Paths) == 0 {
		return nil, fmt.Errorf("imagefolder: %s: %w (want class folders of images, or images: %s)", dir, ErrNoImages, strings.Join(Extensions, " "))
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

func isImage(name string) bool {
	return slices.Contains(Extensions, strings.ToLower(filepath.Ext(name)))
}

// check decodes every image, keeping the size of the first (or Size),
// dropping undecodable files with SkipBad and failing on them otherwise.
func (s *Set) check() error {
	errs := make([]error, len(s.Paths))
	sizes := make([]image.Point, len(s.Paths))
	s.parallel(len(s.Paths), func(i int) {
		img, err := s.decode(s.Paths[i])
		if err != nil {
			errs[i] = err
			return
		}
		sizes[i] = img.Bounds().Size()
	})
	keep := 0
	for i, path := range s.Paths {
		if errs[i] != nil {
			if !s.opt.SkipBad {
				return errs[i]
			}
			s.Skipped = append(s.Skipped, path)
			continue
		}
		s.Paths[keep], sizes[keep] = path, sizes[i]
		if s.Labels != nil {
			s.Labels[keep] = s.Labels[i]
		}
		keep++
	}
	s.Paths, sizes = s.Paths[:keep], sizes[:keep]
	if s.Labels != nil {
		s.Labels = s.Labels[:keep]
	}
	if keep == 0 {
		return fmt.Errorf("imagefolder: %w that decode (%d skipped)", ErrNoImages, len(s.Skipped))
	}
	if s.opt.Size > 0 {
		s.rows, s.cols = s.opt.Size, s.opt.Size
		return nil
	}
	s.rows, s.cols = sizes[0].Y, sizes[0].X
	for i, sz := range sizes {
		if sz != sizes[0] {
			return fmt.Errorf("imagefolder: %s is %d×%d, %s %d×%d: give -size to resize them all", s.Paths[i], sz.X, sz.Y, s.Paths[0], sizes[0].X, sizes[0].Y)
		}
	}
	return nil
}

// decode decodes the image file at path, having read its header first:
// a file that declares more than MaxPixels pixels is refused before any
// pixel is allocated.
func (s *Set) decode(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", path, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, fmt.Errorf("imagefolder: %s declares %d×%d pixels: an empty image", path, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(s.opt.MaxPixels) {
		return nil, fmt.Errorf("imagefolder: %s declares %d×%d pixels: %w (%d)", path, cfg.Width, cfg.Height, ErrTooLarge, s.opt.MaxPixels)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("imagefolder: %w", err)
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", path, err)
	}
	return img, nil
}

// parallel calls f(i) for i in [0, n) on the set's workers.
func (s *Set) parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(s.workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// Shape implements dataset.Source.
func (s *Set) Shape() (n, c, h, w int) { return len(s.Paths), s.opt.Channels, s.rows, s.cols }

// Read implements dataset.Source: it decodes the images [start, start+k) into
// dst, k at once on the set's workers.
func (s *Set) Read(dst []float32, start int) error {
	size := s.opt.Channels * s.rows * s.cols
	k := len(dst) / size
	if len(dst)%size != 0 || start < 0 || start+k > len(s.Paths) {
		return fmt.Errorf("imagefolder: read of %d values at image %d of %d: out of range", len(dst), start, len(s.Paths))
	}
	errs := make([]error, k)
	s.parallel(k, func(i int) {
		img, err := s.decode(s.Paths[start+i])
		if err == nil {
			err = s.pixels(dst[i*size:(i+1)*size], img, s.Paths[start+i])
		}
		errs[i] = err
	})
	return errors.Join(errs...)
}

// pixels writes img's pixels into dst (C planes of rows×cols).
func (s *Set) pixels(dst []float32, img image.Image, path string) error {
	if s.opt.Size > 0 {
		img = resizeCrop(img, s.opt.Size)
	}
	b := img.Bounds()
	if b.Dx() != s.cols || b.Dy() != s.rows {
		return fmt.Errorf("imagefolder: %s is %d×%d, want %d×%d", path, b.Dx(), b.Dy(), s.cols, s.rows)
	}
	plane := s.rows * s.cols
	if g, ok := img.(*image.Gray); ok && s.opt.Channels == 1 {
		// 8-bit grey: v/255, exactly as MNIST's pixels.
		for y := 0; y < s.rows; y++ {
			for x, v := range g.Pix[y*g.Stride : y*g.Stride+s.cols] {
				dst[y*s.cols+x] = float32(v) / 255
			}
		}
		return nil
	}
	for y := 0; y < s.rows; y++ {
		for x := 0; x < s.cols; x++ {
			c := img.At(b.Min.X+x, b.Min.Y+y)
			if s.opt.Channels == 1 {
				g := color.Gray16Model.Convert(c).(color.Gray16)
				dst[y*s.cols+x] = float32(g.Y) / 65535
				continue
			}
			r, gg, bb, _ := c.RGBA()
			dst[y*s.cols+x] = float32(r) / 65535
			dst[plane+y*s.cols+x] = float32(gg) / 65535
			dst[2*plane+y*s.cols+x] = float32(bb) / 65535
		}
	}
	return nil
}

// resizeCrop scales img so that its shorter side is size (bilinear) and
// returns its centre size×size.
func resizeCrop(img image.Image, size int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w == size && h == size {
		return img
	}
	nw, nh := size, size
	if w < h {
		nh = (h*size + w/2) / w
	} else {
		nw = (w*size + h/2) / h
	}
	scaled := image.NewRGBA64(image.Rect(0, 0, nw, nh))
	draw.BiLinear.Scale(scaled, scaled.Bounds(), img, b, draw.Src, nil)
	x0, y0 := (nw-size)/2, (nh-size)/2
	return scaled.SubImage(image.Rect(x0, y0, x0+size, y0+size))
}

// Data is a data set's splits: Train always, Test and Unlabeled when the
// root has them.
type Data struct {
	Train, Test, Unlabeled *Set
}

// Load opens root/train and, if present, root/test and root/unlabeled.
// Test, when labelled, must have Train's classes.
func Load(root string, opt Options) (*Data, error) {
	d := &Data{}
	var err error
	if d.Train, err = Open(filepath.Join(root, "train"), opt); err != nil {
		return nil, err
	}
	for _, split := range []struct {
		name string
		set  **Set
	}{{"test", &d.Test}, {"unlabeled", &d.Unlabeled}} {
		dir := filepath.Join(root, split.name)
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if *split.set, err = Open(dir, opt); err != nil {
			return nil, err
		}
		if n, c, h, w := (*split.set).Shape(); n > 0 {
			_, tc, th, tw := d.Train.Shape()
			if c != tc || h != th || w != tw {
				return nil, fmt.Errorf("imagefolder: %s has images of %d×%d, train/ %d×%d: give -size", dir, w, h, tw, th)
			}
		}
	}
	if d.Test != nil && d.Test.Labels != nil && !slices.Equal(d.Test.Classes, d.Train.Classes) {
		return nil, fmt.Errorf("imagefolder: test/ has classes %v, train/ %v", d.Test.Classes, d.Train.Classes)
	}
	return d, nil
}
