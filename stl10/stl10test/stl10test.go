// Package stl10test writes files in the STL-10 binary format, for tests
// that need a small STL-10 set of their own (the real one cannot be had).
package stl10test

import (
	"fmt"
	"os"

	"calm/stl10"
)

// WriteImages writes images given row-major (C,H,W) as bytes into path in
// the STL-10 binary format (each channel column-major): the inverse of
// stl10.Images without whitening.
func WriteImages(path string, pix []byte) error {
	if len(pix) == 0 || len(pix)%stl10.ImageSize != 0 {
		return fmt.Errorf("stl10test: %d bytes is not a whole number of images", len(pix))
	}
	out := make([]byte, len(pix))
	for i := 0; i < len(pix)/stl10.ImageSize; i++ {
		for c := 0; c < stl10.Channels; c++ {
			base := i*stl10.ImageSize + c*stl10.Side*stl10.Side
			for row := 0; row < stl10.Side; row++ {
				for col := 0; col < stl10.Side; col++ {
					out[base+col*stl10.Side+row] = pix[base+row*stl10.Side+col]
				}
			}
		}
	}
	return os.WriteFile(path, out, 0o666)
}
