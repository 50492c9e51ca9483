package stl10

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// The STL-10 image format.
const (
	Side      = 96
	Channels  = 3
	ImageSize = Channels * Side * Side // bytes per image
	Classes   = 10
)

// Images streams the images of one STL-10 image file as float32 (C,H,W)
// row-major, scaled to [0, 1] and, when whitening, ZCA-whitened per image
// and channel. It implements dataset.Source. Reads are safe for one goroutine at
// a time.
type Images struct {
	f      *os.File
	path   string
	n      int
	whiten bool
	buf    []byte
	pool   sync.Pool // *Whitener
}

// Open opens an image file (train_X.bin, test_X.bin, unlabeled_X.bin),
// checking that its size is a whole, non-zero number of images. Close it
// when done.
func Open(path string, whiten bool) (*Images, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("stl10: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stl10: %w", err)
	}
	if st.Size() == 0 || st.Size()%ImageSize != 0 {
		f.Close()
		return nil, fmt.Errorf("stl10: %s: %d bytes is not a whole number of %d-byte images", path, st.Size(), ImageSize)
	}
	im := &Images{f: f, path: path, n: int(st.Size() / ImageSize), whiten: whiten}
	im.pool.New = func() any { return NewWhitener(Side) }
	return im, nil
}

// Close closes the file.
func (im *Images) Close() error { return im.f.Close() }

// Len returns the number of images.
func (im *Images) Len() int { return im.n }

// Shape implements dataset.Source.
func (im *Images) Shape() (n, c, h, w int) { return im.n, Channels, Side, Side }

// Read implements dataset.Source: it fills dst with the images from start on,
// converting (and whitening) them on all cores.
func (im *Images) Read(dst []float32, start int) error {
	const size = ImageSize
	count := len(dst) / size
	if len(dst)%size != 0 || start < 0 || start+count > im.n {
		return fmt.Errorf("stl10: read of %d values at image %d of %d", len(dst), start, im.n)
	}
	if cap(im.buf) < count*size {
		im.buf = make([]byte, count*size)
	}
	raw := im.buf[:count*size]
	if _, err := im.f.ReadAt(raw, int64(start)*size); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("stl10: %s: %w", im.path, err)
	}
	workers := min(count, runtime.GOMAXPROCS(0))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			z := im.pool.Get().(*Whitener)
			defer im.pool.Put(z)
			plane := make([]float64, Side*Side)
			for i := w * count / workers; i < (w+1)*count/workers; i++ {
				if err := im.convert(dst[i*size:(i+1)*size], raw[i*size:(i+1)*size], plane, z); err != nil {
					errs[w] = fmt.Errorf("stl10: image %d: %w", start+i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// convert turns one image's column-major bytes into row-major float32.
func (im *Images) convert(dst []float32, raw []byte, plane []float64, z *Whitener) error {
	for c := 0; c < Channels; c++ {
		src := raw[c*Side*Side : (c+1)*Side*Side]
		for col := 0; col < Side; col++ {
			for row := 0; row < Side; row++ {
				plane[row*Side+col] = float64(src[col*Side+row]) / 255
			}
		}
		if im.whiten {
			if err := z.Whiten(plane); err != nil {
				return err
			}
		}
		out := dst[c*Side*Side : (c+1)*Side*Side]
		for i, v := range plane {
			out[i] = float32(v)
		}
	}
	return nil
}

// ReadLabels reads a label file (train_y.bin, test_y.bin) of n labels 1–10
// and returns them as 0–9.
func ReadLabels(path string, n int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stl10: %w", err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("stl10: %s holds %d labels, want one per image (%d)", path, len(b), n)
	}
	for i, l := range b {
		if l < 1 || l > Classes {
			return nil, fmt.Errorf("stl10: %s: label %d of image %d is not in 1…%d", path, l, i, Classes)
		}
		b[i] = l - 1
	}
	return b, nil
}

// Set is the STL-10 distribution in a directory.
type Set struct {
	Train, Test, Unlabeled  *Images // Unlabeled is nil unless asked for
	TrainLabels, TestLabels []byte
}

// Load opens the files of dir: train and test always, unlabeled_X.bin when
// unlabeled is set. Close the set when done.
func Load(dir string, unlabeled, whiten bool) (*Set, error) {
	s := &Set{}
	var err error
	open := func(name string) *Images {
		if err != nil {
			return nil
		}
		var im *Images
		im, err = Open(filepath.Join(dir, name), whiten)
		return im
	}
	s.Train = open("train_X.bin")
	s.Test = open("test_X.bin")
	if unlabeled {
		s.Unlabeled = open("unlabeled_X.bin")
	}
	if err == nil {
		s.TrainLabels, err = ReadLabels(filepath.Join(dir, "train_y.bin"), s.Train.Len())
	}
	if err == nil {
		s.TestLabels, err = ReadLabels(filepath.Join(dir, "test_y.bin"), s.Test.Len())
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every open file of the set.
func (s *Set) Close() error {
	var errs []error
	for _, im := range []*Images{s.Train, s.Test, s.Unlabeled} {
		if im != nil {
			errs = append(errs, im.Close())
		}
	}
	return errors.Join(errs...)
}
