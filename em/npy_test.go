package em_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"calm/em"

	"codeberg.org/sbinet/npyio"
)

// TestSaveNpy writes fresh random arrays of several shapes (one value, a
// vector, a matrix larger than the writer's block, a 4-d array) and reads
// them back with npyio's reader, which knows nothing of the writer: the
// shape, the dtype and every bit must come back, and the data must start
// on a multiple of 64 bytes, as the format asks.
func TestSaveNpy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, shape := range [][]int{{1}, {7}, {1000, 301}, {3, 2, 5, 5}, {0, 4}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		want := make([]float32, n)
		for i := range want {
			want[i] = float32(rng.NormFloat64() * 1e3)
		}
		if n > 2 {
			want[1] = float32(math.Inf(-1)) // bits, not arithmetic
		}
		path := filepath.Join(t.TempDir(), "x.npy")
		if err := em.SaveNpy(path, want, shape...); err != nil {
			t.Fatalf("%v: %v", shape, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := npyio.NewReader(f)
		if err != nil {
			f.Close()
			t.Fatalf("%v: %v", shape, err)
		}
		var got []float32
		err = r.Read(&got)
		f.Close()
		if err != nil {
			t.Fatalf("%v: %v", shape, err)
		}
		if !slices.Equal(r.Header.Descr.Shape, shape) || strings.Trim(r.Header.Descr.Type, `'"`) != "<f4" || r.Header.Descr.Fortran {
			t.Errorf("%v: header %+v", shape, r.Header.Descr)
		}
		if !slices.EqualFunc(got, want, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
			t.Errorf("%v: the values read back differ", shape)
		}
		st, _ := os.Stat(path)
		if off := st.Size() - 4*int64(n); off%64 != 0 {
			t.Errorf("%v: data at byte %d, want a multiple of 64", shape, off)
		}
	}
	if err := em.SaveNpy(filepath.Join(t.TempDir(), "bad.npy"), make([]float32, 5), 2, 3); err == nil {
		t.Error("5 values saved as shape (2,3)")
	}
}

// BenchmarkSaveNpy writes a feature file of 10 000 rows of 3 584 values
// (143 MB); b.SetBytes makes the tool report MB/s.
func BenchmarkSaveNpy(b *testing.B) {
	const rows, cols = 10000, 3584
	data := make([]float32, rows*cols)
	for i := range data {
		data[i] = float32(i)
	}
	path := filepath.Join(b.TempDir(), "f.npy")
	b.SetBytes(4 * rows * cols)
	for b.Loop() {
		if err := em.SaveNpy(path, data, rows, cols); err != nil {
			b.Fatal(err)
		}
	}
}
