package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestNarrow checks MulNarrow and Narrow.AddMul against float64 loops on
// fresh random matrices, with the assembly kernels (where the CPU has
// them) and the Go loops, for widths with and without a tail of columns,
// fewer rows than NarrowRows, odd row counts and strided rows.
func TestNarrow(t *testing.T) {
	kernels := map[string]bool{"go": false}
	if NarrowFast() {
		kernels["asm"] = true
	}
	for name, asm := range kernels {
		for _, tc := range []struct{ rows, cols, n, pad int }{
			{10, 64, 4, 0}, {10, 6400, 7, 0}, {10, 100, 5, 3}, {3, 1152, 9, 0}, {1, 31, 2, 1}, {7, 33, 1, 0},
		} {
			t.Run(fmt.Sprintf("%s/%dx%d/n=%d/pad=%d", name, tc.rows, tc.cols, tc.n, tc.pad), func(t *testing.T) {
				if !asm {
					defer withoutNarrowKernels()()
				}
				testNarrow(t, tc.rows, tc.cols, tc.n, tc.pad)
			})
		}
	}
}

// withoutNarrowKernels makes the narrow products use their Go loops until
// the returned function is called.
func withoutNarrowKernels() (restore func()) {
	dot, add := narrowDot2, narrowAdd
	narrowDot2, narrowAdd = nil, nil
	return func() { narrowDot2, narrowAdd = dot, add }
}

func testNarrow(t *testing.T, rows, cols, n, pad int) {
	rng := rand.New(rand.NewPCG(uint64(rows), uint64(cols*n)))
	ldx, ldr := cols+pad, NarrowRows+pad
	x := randomF32(rng, (n-1)*ldx+cols)
	w := randomF32(rng, rows*cols)
	m, err := NewNarrow(rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	m.Set(w)
	z := make([]float32, (n-1)*ldr+rows)
	MulNarrow(z, ldr, x, n, ldx, m)
	// float32 sums of cols products of N(0,1) values: rounding grows like
	// the square root of their number.
	tol := 1e-5 * math.Sqrt(float64(cols))
	for i := 0; i < n; i++ {
		for r := 0; r < rows; r++ {
			var want float64
			for j := 0; j < cols; j++ {
				want += float64(x[i*ldx+j]) * float64(w[r*cols+j])
			}
			if got := float64(z[i*ldr+r]); math.Abs(got-want) > tol*(1+math.Abs(want)) {
				t.Fatalf("z[%d][%d] = %v, want %v", i, r, got, want)
			}
		}
	}
	// G = W + Rᵀ·X, read back in float64 onto a base of ones.
	rr := randomF32(rng, (n-1)*ldr+NarrowRows)
	m.AddMul(rr, ldr, x, n, ldx)
	got := make([]float64, rows*cols)
	for i := range got {
		got[i] = 1
	}
	m.AddTo(got)
	for r := 0; r < rows; r++ {
		for j := 0; j < cols; j++ {
			want := 1 + float64(w[r*cols+j])
			for i := 0; i < n; i++ {
				want += float64(rr[i*ldr+r]) * float64(x[i*ldx+j])
			}
			if g := got[r*cols+j]; math.Abs(g-want) > 1e-5*float64(n+1)*(1+math.Abs(want)) {
				t.Fatalf("G[%d][%d] = %v, want %v", r, j, g, want)
			}
		}
	}
	m.Zero()
	clear(got)
	m.AddTo(got)
	for i, v := range got {
		if v != 0 {
			t.Fatalf("after Zero, G[%d] = %v", i, v)
		}
	}
}

func randomF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func TestNewNarrowErrors(t *testing.T) {
	for _, s := range [][2]int{{0, 5}, {NarrowRows + 1, 5}, {3, 0}} {
		if _, err := NewNarrow(s[0], s[1]); err == nil {
			t.Errorf("NewNarrow(%d, %d) succeeded", s[0], s[1])
		}
	}
}
