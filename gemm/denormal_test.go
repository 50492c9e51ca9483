package gemm

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// denormal returns values of which about half are denormal (below 2⁻¹²⁶,
// as a posterior's far tail is) and the rest N(0,1).
func denormal(rng *rand.Rand, n int) []float32 {
	v := randn(rng, n)
	for i := range v {
		if i%2 == 0 {
			v[i] = float32(rng.Float64()) * 1e-39
		}
	}
	return v
}

// TestDenormals checks, with each kernel, a product whose B is half
// denormal against float64 loops (a denormal's part is below any
// tolerance), and that the caller's floating-point state is given back:
// Go arithmetic on the same thread still makes denormals afterwards.
func TestDenormals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const m, n, k = 13, 70, 300
	rng := rand.New(rand.NewPCG(8, 8))
	a, b := randn(rng, m*k), denormal(rng, k*n)
	for _, kern := range MicroKernels() {
		c := make([]float32, m*n)
		Mul(m, n, k, 1, Matrix{Data: a, Stride: k}, Matrix{Data: b, Stride: n}, 0, c, n, &Workspace{MicroKernel: kern})
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var want float64
				for l := 0; l < k; l++ {
					want += float64(a[i*k+l]) * float64(b[l*n+j])
				}
				if got := float64(c[i*n+j]); math.Abs(got-want) > tol(k, want) {
					t.Fatalf("%s: c[%d,%d] = %v, want %v", kern.Name(), i, j, got, want)
				}
			}
		}
		tiny := float32(1e-30)
		if d := tiny * float32(1e-10); d == 0 {
			t.Fatalf("%s: after the product, 1e-30·1e-10 is 0 in Go: the kernel left denormals flushed", kern.Name())
		}
	}
}

// BenchmarkDenormals times a product with a half-denormal B, against the
// same product with none, with each kernel: the two should run alike.
func BenchmarkDenormals(b *testing.B) {
	const m, n, k = 512, 64, 400
	for _, kern := range MicroKernels()[:len(MicroKernels())-1] {
		for _, tc := range []struct {
			name string
			make func(*rand.Rand, int) []float32
		}{{"normal", randn}, {"denormal", denormal}} {
			b.Run(kern.Name()+"/"+tc.name, func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				a, bm := randn(rng, m*k), tc.make(rng, k*n)
				c := make([]float32, m*n)
				ws := &Workspace{MicroKernel: kern}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Mul(m, n, k, 1, Matrix{Data: a, Stride: k}, Matrix{Data: bm, Stride: n}, 0, c, n, ws)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
