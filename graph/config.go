package graph

import (
	"errors"
	"fmt"

	"gorgonia.org/tensor"
)

// ErrConfig is wrapped by every error that Config.Validate returns.
var ErrConfig = errors.New("invalid layer configuration")

// Config describes one CALM layer and the images it sees.
type Config struct {
	Kernels  int   // K, the number of kernels (mixture components)
	Width    int   // w, the kernels' width and height
	Pad      int   // p, zero padding on each side of the image
	Channels int   // C, the image channels
	Rows     int   // H, the image height in pixels
	Cols     int   // W, the image width in pixels
	Batch    int   // the most images a compiled step takes at once
	Model    Model // what EM assumes about the patches; the zero value is the paper's

	// KernelVariances gives each kernel its own variance σ_k² (with the
	// patch model): the E-step and the features then take the precisions
	// λ_k = 1/σ_k² as an input (Precisions) and include each patch's
	// energy in the log joint (EnergyChannel), and the M-step adds each
	// kernel's weighted patch energy (KernelEnergy) to its output.
	KernelVariances bool
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
	case c.Rows < 1 || c.Cols < 1:
		return bad("image size %d×%d, want at least 1×1", c.Rows, c.Cols)
	case c.Width < 1:
		return bad("kernel width = %d, want at least 1", c.Width)
	case c.Pad < 0:
		return bad("padding = %d, want at least 0", c.Pad)
	case c.Width > c.Rows+2*c.Pad:
		return bad("kernel width %d is larger than the padded image height %d+2·%d", c.Width, c.Rows, c.Pad)
	case c.Width > c.Cols+2*c.Pad:
		return bad("kernel width %d is larger than the padded image width %d+2·%d", c.Width, c.Cols, c.Pad)
	case c.Batch < 1:
		return bad("batch = %d, want at least 1", c.Batch)
	case c.Model != ImageModel && c.Model != PatchModel:
		return bad("model %v, want image or patch", c.Model)
	case c.KernelVariances && c.Model != PatchModel:
		return bad("a variance per kernel needs the patch model, not the %v model", c.Model)
	}
	return nil
}

// Positions returns the number of kernel positions along the height and the
// width of a padded image: Uh = H+2p−w+1 and Uw = W+2p−w+1.
func (c Config) Positions() (uh, uw int) {
	return c.Rows + 2*c.Pad - c.Width + 1, c.Cols + 2*c.Pad - c.Width + 1
}

// ImageLen is the number of values in one image, C·H·W.
func (c Config) ImageLen() int { return c.Channels * c.Rows * c.Cols }

// KernelLen is the number of values in one kernel, C·w·w.
func (c Config) KernelLen() int { return c.Channels * c.Width * c.Width }

// MapLen is the number of values of one image's log joint, K·Uh·Uw.
func (c Config) MapLen() int {
	uh, uw := c.Positions()
	return c.Kernels * uh * uw
}

// ImageShape is the shape of a batch of n images, (n,C,H,W).
func (c Config) ImageShape(n int) tensor.Shape { return tensor.Shape{n, c.Channels, c.Rows, c.Cols} }

// KernelShape is the shape of the kernels θ, (K,C,w,w).
func (c Config) KernelShape() tensor.Shape {
	return tensor.Shape{c.Kernels, c.Channels, c.Width, c.Width}
}

// MapShape is the shape of the log joint or the posterior of n images,
// (n,K,Uh,Uw).
func (c Config) MapShape(n int) tensor.Shape {
	uh, uw := c.Positions()
	return tensor.Shape{n, c.Kernels, uh, uw}
}
