package idx_test

import (
	"bytes"
	"testing"

	"calm/idx"
)

// FuzzRead feeds arbitrary bytes to both readers: they must return an
// error or a result consistent with its header, never panic, and never
// allocate for more data than the input holds (readBody grows with the data).
func FuzzRead(f *testing.F) {
	f.Add(imageFile(0x803, 2, 3, 4))
	f.Add(labelFile(5))
	f.Add(imageFile(0x803, 2, 3, 4)[:20])
	f.Add([]byte{0, 0, 8, 3, 0x3b, 0x9a, 0xca, 0, 0, 0, 0, 28, 0, 0, 0, 28}) // 10⁹ images claimed
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if im, err := idx.ReadImages(bytes.NewReader(data)); err == nil {
			if len(im.Pix) != im.N*im.Rows*im.Cols || len(im.Pix) > len(data) {
				t.Fatalf("%d pixels for %d images of %d×%d from %d bytes", len(im.Pix), im.N, im.Rows, im.Cols, len(data))
			}
		}
		if l, err := idx.ReadLabels(bytes.NewReader(data)); err == nil && len(l) > len(data) {
			t.Fatalf("%d labels from %d bytes", len(l), len(data))
		}
	})
}
