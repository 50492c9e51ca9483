package graph

import (
	"errors"
	"fmt"
)

// ErrConfig is wrapped by every error that Config.Validate returns.
var ErrConfig = errors.New("invalid layer configuration")

// Config describes one CALM layer and the images it sees.
type Config struct {
	Kernels  int // K, the number of kernels (mixture components)
	Channels int // C, the image channels
	Height   int // H, the image height in pixels
	Width    int // W, the image width in pixels
	Size     int // w, the kernel width and height
	Pad      int // p, zero padding on each side
	Batch    int // images per batch
}

// Validate reports the first impossible value in c, naming it.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("graph: %w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Kernels < 1:
		return bad("kernels = %d, want at least 1", c.Kernels)
	case c.Channels < 1:
		return bad("channels = %d, want at least 1", c.Channels)
	case c.Height < 1 || c.Width < 1:
		return bad("image size %d×%d, want at least 1×1", c.Height, c.Width)
	case c.Size < 1:
		return bad("kernel width = %d, want at least 1", c.Size)
	case c.Pad < 0:
		return bad("padding = %d, want at least 0", c.Pad)
	case c.Size > c.Height+2*c.Pad:
		return bad("kernel width %d is larger than the padded image height %d+2·%d", c.Size, c.Height, c.Pad)
	case c.Size > c.Width+2*c.Pad:
		return bad("kernel width %d is larger than the padded image width %d+2·%d", c.Size, c.Width, c.Pad)
	case c.Batch < 1:
		return bad("batch = %d, want at least 1", c.Batch)
	}
	return nil
}

// Positions returns the number of kernel positions along the height and the
// width of a padded image: Uh = H+2p−w+1 and Uw = W+2p−w+1.
func (c Config) Positions() (uh, uw int) {
	return c.Height + 2*c.Pad - c.Size + 1, c.Width + 2*c.Pad - c.Size + 1
}

// ImageLen is the number of values in one image, C·H·W.
func (c Config) ImageLen() int { return c.Channels * c.Height * c.Width }

// KernelLen is the number of values in one kernel, C·w·w.
func (c Config) KernelLen() int { return c.Channels * c.Size * c.Size }

// MulAdds is the number of multiply-adds of one image's convolution with all
// K kernels: K · Uh · Uw · C · w · w. The M-step's convolution costs the same.
func (c Config) MulAdds() int {
	uh, uw := c.Positions()
	return c.Kernels * uh * uw * c.KernelLen()
}
