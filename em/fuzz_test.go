package em_test

import (
	"os"
	"path/filepath"
	"testing"

	"calm/em"
)

// FuzzReadTheta feeds arbitrary bytes to the .npy reader: an error or
// kernels whose shape matches the data, never a panic, never an allocation
// for a shape the bytes do not hold.
func FuzzReadTheta(f *testing.F) {
	dir := f.TempDir()
	for i, theta := range []struct{ k, c, w int }{{2, 1, 3}, {1, 3, 2}} {
		p := filepath.Join(dir, "t.npy")
		if err := em.SaveTheta(p, em.InitTheta(theta.k, theta.c, theta.w, uint64(i))); err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)-3])
	}
	f.Add([]byte("\x93NUMPY\x01\x00\xff\xff{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1, 2, 2), }"))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		theta, err := em.ReadTheta(data)
		if err != nil {
			return
		}
		s := theta.Shape()
		if n := s[0] * s[1] * s[2] * s[3]; 4*n > len(data) || len(theta.Data().([]float32)) != n {
			t.Fatalf("shape %v from %d bytes", s, len(data))
		}
	})
}
