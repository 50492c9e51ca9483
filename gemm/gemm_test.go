package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

func randn(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// at returns element (i, j) of op(M).
func (m Matrix) at(i, j int) float32 {
	if m.T {
		return m.Data[j*m.Stride+i]
	}
	return m.Data[i*m.Stride+j]
}

// naive computes α·op(A)·op(B) + β·C in float64.
func naive(m, n, k int, alpha float64, a, b Matrix, beta float64, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a.at(i, p)) * float64(b.at(p, j))
			}
			out[i*n+j] = alpha*s + beta*float64(c[i*ldc+j])
		}
	}
	return out
}

// TestMul checks every shape class the blocking produces (edge tiles in m
// and n, k blocks with remainders, strides larger than the rows, both
// transposes) against float64 loops, with each micro-kernel available.
func TestMul(t *testing.T) {
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {5, 15, 2}, {12, 32, 256}, {13, 33, 257},
		{64, 169, 400}, {64, 400, 169}, {97, 50, 300}, {200, 2100, 5},
	}
	kernels := map[string]func(int, []float32, []float32, []float32, int){"go": kernelGo}
	if KernelName != "go" {
		kernels[KernelName] = kernel
	}
	defer func(k func(int, []float32, []float32, []float32, int)) { kernel = k }(kernel)
	for name, kern := range kernels {
		kernel = kern
		for _, s := range shapes {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				t.Run(fmt.Sprintf("%s/%dx%dx%d/T%v", name, s.m, s.n, s.k, tr), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(s.m), uint64(s.n*s.k)))
					lda, ldb, ldc := s.k+3, s.n+1, s.n+5
					if tr[0] {
						lda = s.m + 2
					}
					if tr[1] {
						ldb = s.k + 4
					}
					rowsA, rowsB := s.m, s.k
					if tr[0] {
						rowsA = s.k
					}
					if tr[1] {
						rowsB = s.n
					}
					a := Matrix{Data: randn(rng, rowsA*lda), Stride: lda, T: tr[0]}
					b := Matrix{Data: randn(rng, rowsB*ldb), Stride: ldb, T: tr[1]}
					c := randn(rng, s.m*ldc)
					want := naive(s.m, s.n, s.k, 0.5, a, b, -2, c, ldc)
					orig := append([]float32(nil), c...)
					Mul(s.m, s.n, s.k, 0.5, a, b, -2, c, ldc, nil)
					for i := 0; i < s.m; i++ {
						for j := 0; j < ldc; j++ {
							got := float64(c[i*ldc+j])
							if j >= s.n {
								if c[i*ldc+j] != orig[i*ldc+j] {
									t.Fatalf("C[%d,%d] beyond n was written", i, j)
								}
								continue
							}
							// float32 sums of k products of N(0,1) values.
							w := want[i*s.n+j]
							if tol := 1e-5 * (1 + math.Sqrt(float64(s.k))) * (1 + math.Abs(w)); math.Abs(got-w) > tol {
								t.Fatalf("C[%d,%d] = %v, want %v", i, j, got, w)
							}
						}
					}
				})
			}
		}
	}
}

// TestKernelsAgree runs the assembly and Go micro-kernels on the same
// random panels: they must give the same tile up to float32 rounding.
func TestKernelsAgree(t *testing.T) {
	if KernelName == "go" {
		t.Skip("no assembly kernel on this CPU: nothing to compare")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, k := range []int{1, 2, 3, 7, 256} {
		a, b := randn(rng, k*mr), randn(rng, k*nr)
		c1 := randn(rng, mr*20)
		c2 := append([]float32(nil), c1...)
		kernel(k, a, b, c1, 20)
		kernelGo(k, a, b, c2, 20)
		for i := range c1 {
			if d := math.Abs(float64(c1[i] - c2[i])); d > 1e-5*(1+math.Abs(float64(c2[i])))*math.Sqrt(float64(k)) {
				t.Fatalf("k=%d: tile[%d] = %v (%s), %v (go)", k, i, c1[i], KernelName, c2[i])
			}
			if i%20 >= nr && c1[i] != c2[i] {
				t.Fatalf("k=%d: the kernel wrote beyond its tile at %d", k, i)
			}
		}
	}
}

func TestParallelMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k := 70, 300, 200
	a := Matrix{Data: randn(rng, m*k), Stride: k}
	b := Matrix{Data: randn(rng, n*k), Stride: k, T: true}
	c := make([]float32, m*n)
	want := naive(m, n, k, 1, a, b, 0, c, n)
	ParallelMul(m, n, k, 1, a, b, 0, c, n)
	for i, w := range want {
		if math.Abs(float64(c[i])-w) > 1e-4*(1+math.Abs(w)) {
			t.Fatalf("C[%d] = %v, want %v", i, c[i], w)
		}
	}
}

// TestMulPacked fills B's panels by hand, the way the convolution ops do,
// and checks C += A·B against float64 loops.
func TestMulPacked(t *testing.T) {
	for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {6, 16, 5}, {64, 169, 400}, {64, 400, 169}, {7, 33, 300}} {
		rng := rand.New(rand.NewPCG(uint64(s.m), uint64(s.n)))
		a := Matrix{Data: randn(rng, s.m*s.k), Stride: s.k}
		b := Matrix{Data: randn(rng, s.k*s.n), Stride: s.n}
		var pa PackedA
		pa.Pack(s.m, s.k, 2, a)
		var pb PackedB
		data := pb.Reset(s.k, s.n)
		for i := range data {
			data[i] = float32(math.NaN()) // Reset does not clear: every slot must be written
		}
		for j := 0; j < Panels(s.n)*PanelWidth; j++ {
			for r := 0; r < s.k; r++ {
				v := float32(0)
				if j < s.n {
					v = b.Data[r*s.n+j]
				}
				data[(j/PanelWidth)*PanelWidth*s.k+r*PanelWidth+j%PanelWidth] = v
			}
		}
		var packed PackedB
		packed.Pack(s.k, s.n, b)
		if !slices.Equal(packed.data, pb.data) {
			t.Fatalf("%v: PackedB.Pack differs from the layout Reset documents", s)
		}
		c := randn(rng, s.m*s.n)
		want := naive(s.m, s.n, s.k, 2, a, b, 1, c, s.n)
		MulPacked(&pa, &pb, c, s.n, nil)
		for i, w := range want {
			if math.Abs(float64(c[i])-w) > 1e-5*(1+math.Sqrt(float64(s.k)))*(1+math.Abs(w)) {
				t.Fatalf("%v: C[%d] = %v, want %v", s, i, c[i], w)
			}
		}
	}
}

// TestImplementation checks the blas.Float32 Sgemm against gonum's own.
func TestImplementation(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	m, n, k := 37, 91, 130
	a, b := randn(rng, k*m), randn(rng, n*k)
	c1 := randn(rng, m*n)
	c2 := append([]float32(nil), c1...)
	Implementation{}.Sgemm(blas.Trans, blas.Trans, m, n, k, 1.5, a, m, b, k, 0.5, c1, n)
	gonum.Implementation{}.Sgemm(blas.Trans, blas.Trans, m, n, k, 1.5, a, m, b, k, 0.5, c2, n)
	for i := range c1 {
		if math.Abs(float64(c1[i]-c2[i])) > 1e-4*(1+math.Abs(float64(c2[i]))) {
			t.Fatalf("C[%d] = %v, gonum %v", i, c1[i], c2[i])
		}
	}
}
