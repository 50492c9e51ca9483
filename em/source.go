package em

import "fmt"

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
		return nil, fmt.Errorf("em: %d values for %d images of %d×%d×%d", len(pix), n, c, h, w)
	}
	return &Images{pix: pix, n: n, c: c, h: h, w: w}, nil
}

// Shape implements Source.
func (im *Images) Shape() (n, c, h, w int) { return im.n, im.c, im.h, im.w }

// Read implements Source.
func (im *Images) Read(dst []float32, start int) error {
	size := im.c * im.h * im.w
	if start < 0 || len(dst)%size != 0 || start*size+len(dst) > len(im.pix) {
		return fmt.Errorf("em: read of %d values at image %d: out of range", len(dst), start)
	}
	copy(dst, im.pix[start*size:])
	return nil
}

// Pixels returns the images' values, (N,C,H,W) row-major.
func (im *Images) Pixels() []float32 { return im.pix }
