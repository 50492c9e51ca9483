package stl10_test

import (
	"os"
	"path/filepath"
	"testing"

	"calm/stl10"
)

// FuzzFiles writes arbitrary bytes as an image file and as a label file:
// opening and reading must fail cleanly or succeed consistently, never
// panic.
func FuzzFiles(f *testing.F) {
	f.Add(make([]byte, stl10.ImageSize), 1)
	f.Add(make([]byte, stl10.ImageSize+1), 1)
	f.Add([]byte{1, 2, 3, 11}, 4)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		dir := t.TempDir()
		p := filepath.Join(dir, "x.bin")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if im, err := stl10.Open(p, false); err == nil {
			if im.Len()*stl10.ImageSize != len(data) {
				t.Fatalf("%d images from %d bytes", im.Len(), len(data))
			}
			dst := make([]float32, stl10.ImageSize)
			if err := im.Read(dst, im.Len()-1); err != nil {
				t.Fatal(err)
			}
			im.Close()
		}
		if l, err := stl10.ReadLabels(p, n); err == nil {
			for _, v := range l {
				if v >= stl10.Classes {
					t.Fatalf("label %d", v)
				}
			}
		}
	})
}
