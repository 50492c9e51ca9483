package dataset

import (
	"fmt"
	"slices"
)

// Source gives the images to train on, in a fixed order.
type Source interface {
	// Shape returns the number of images and the shape of each (C,H,W).
	Shape() (n, c, h, w int)
	// Read fills dst with the images [start, start+len(dst)/(C·H·W)), each
	// laid out (C,H,W) row-major.
	Read(dst []float32, start int) error
}

// Images is a Source held in memory.
type Images struct {
	pix        []float32
	n, c, h, w int
}

// NewImages returns the Source of n images (c,h,w) stored in pix, which is
// used without copying and never modified.
func NewImages(pix []float32, n, c, h, w int) (*Images, error) {
	if n < 1 || c < 1 || h < 1 || w < 1 || len(pix) != n*c*h*w {
		return nil, fmt.Errorf("dataset: %d values for %d images of %d×%d×%d", len(pix), n, c, h, w)
	}
	return &Images{pix: pix, n: n, c: c, h: h, w: w}, nil
}

// Shape implements Source.
func (im *Images) Shape() (n, c, h, w int) { return im.n, im.c, im.h, im.w }

// Read implements Source.
func (im *Images) Read(dst []float32, start int) error {
	size := im.c * im.h * im.w
	if start < 0 || len(dst)%size != 0 || start*size+len(dst) > len(im.pix) {
		return fmt.Errorf("dataset: read of %d values at image %d: out of range", len(dst), start)
	}
	copy(dst, im.pix[start*size:])
	return nil
}

// Pixels returns the images' values, (N,C,H,W) row-major.
func (im *Images) Pixels() []float32 { return im.pix }

// Concat is the Source of a's images followed by b's, which must have the
// same image shape.
func Concat(a, b Source) (Source, error) {
	na, ca, ha, wa := a.Shape()
	_, cb, hb, wb := b.Shape()
	if ca != cb || ha != hb || wa != wb {
		return nil, fmt.Errorf("dataset: cannot concatenate images of %d×%d×%d and %d×%d×%d", ca, ha, wa, cb, hb, wb)
	}
	return concat{a: a, b: b, na: na, size: ca * ha * wa}, nil
}

type concat struct {
	a, b     Source
	na, size int
}

func (c concat) Shape() (n, ch, h, w int) {
	nb, ch, h, w := c.b.Shape()
	return c.na + nb, ch, h, w
}

func (c concat) Read(dst []float32, start int) error {
	if start < c.na {
		k := min(len(dst)/c.size, c.na-start)
		if err := c.a.Read(dst[:k*c.size], start); err != nil {
			return err
		}
		dst, start = dst[k*c.size:], c.na
	}
	if len(dst) == 0 {
		return nil
	}
	return c.b.Read(dst, start-c.na)
}

// First is the Source of the first n images of src (all of them if it has
// fewer).
func First(src Source, n int) Source {
	if total, _, _, _ := src.Shape(); n >= total || n < 1 {
		return src
	}
	return first{src, n}
}

type first struct {
	Source
	n int
}

func (f first) Shape() (n, c, h, w int) {
	_, c, h, w = f.Source.Shape()
	return f.n, c, h, w
}

func (f first) Read(dst []float32, start int) error {
	_, c, h, w := f.Source.Shape()
	if start+len(dst)/(c*h*w) > f.n {
		return fmt.Errorf("dataset: read of images %d… beyond the first %d", start, f.n)
	}
	return f.Source.Read(dst, start)
}

// Subset is the Source of the images of src at the given indices, in that
// order; runs of consecutive indices are read in one call.
func Subset(src Source, index []int) (Source, error) {
	n, _, _, _ := src.Shape()
	for _, i := range index {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("dataset: subset index %d of %d images", i, n)
		}
	}
	if len(index) == 0 {
		return nil, fmt.Errorf("dataset: an empty subset")
	}
	return &subset{src, index}, nil
}

type subset struct {
	Source
	index []int
}

func (s *subset) Shape() (n, c, h, w int) {
	_, c, h, w = s.Source.Shape()
	return len(s.index), c, h, w
}

func (s *subset) Read(dst []float32, start int) error {
	_, c, h, w := s.Source.Shape()
	size := c * h * w
	k := len(dst) / size
	if len(dst)%size != 0 || start < 0 || start+k > len(s.index) {
		return fmt.Errorf("dataset: read of %d values at image %d of a subset of %d", len(dst), start, len(s.index))
	}
	for i := 0; i < k; {
		run := 1
		for i+run < k && s.index[start+i+run] == s.index[start+i]+run {
			run++
		}
		if err := s.Source.Read(dst[i*size:(i+run)*size], s.index[start+i]); err != nil {
			return err
		}
		i += run
	}
	return nil
}

// Mirror is the Source of src's images mirrored left to right: each row
// of each channel reversed. A classifier fitted on an image set and its
// mirror learns that a scene's left and right are the same scene.
func Mirror(src Source) Source { return mirror{src} }

type mirror struct{ Source }

func (m mirror) Read(dst []float32, start int) error {
	if err := m.Source.Read(dst, start); err != nil {
		return err
	}
	_, _, _, w := m.Source.Shape()
	for row := 0; row+w <= len(dst); row += w {
		slices.Reverse(dst[row : row+w])
	}
	return nil
}
