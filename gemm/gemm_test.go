package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
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

// tol is the allowed difference of a float32 sum of k products of N(0,1)
// values from its float64 value w.
func tol(k int, w float64) float64 { return 1e-5 * (1 + math.Sqrt(float64(k))) * (1 + math.Abs(w)) }

// TestKernels makes sure the tests below run every kernel of this CPU: on
// an AVX-512 machine that is three.
func TestKernels(t *testing.T) {
	var names []string
	for _, k := range MicroKernels() {
		names = append(names, k.Name())
	}
	t.Logf("kernels on this CPU: %v", names)
	if names[len(names)-1] != "go" {
		t.Errorf("kernels %v: the portable kernel must always be there, last", names)
	}
	for _, want := range []struct {
		name string
		has  bool
	}{{"avx512", hasAVX512}, {"avx2", hasAVX2}} {
		if _, err := Lookup(want.name); (err == nil) != want.has {
			t.Errorf("Lookup(%q): %v; the CPU has it: %v", want.name, err, want.has)
		}
	}
}

// TestMul checks every shape class the blocking produces (edge tiles in m
// and n, k blocks with remainders, strides larger than the rows, both
// transposes) against float64 loops, with each kernel.
func TestMul(t *testing.T) {
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {5, 15, 2}, {12, 32, 256}, {13, 33, 257}, {6, 64, 5}, {6, 65, 7}, {11, 100, 9},
		{64, 169, 400}, {169, 64, 400}, {64, 400, 169}, {97, 50, 300}, {200, 2100, 5}, {3, 200, 675},
	}
	for _, kern := range MicroKernels() {
		for _, s := range shapes {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				t.Run(fmt.Sprintf("%s/%dx%dx%d/T%v", kern, s.m, s.n, s.k, tr), func(t *testing.T) {
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
					orig := slices.Clone(c)
					Mul(s.m, s.n, s.k, 0.5, a, b, -2, c, ldc, &Workspace{MicroKernel: kern})
					checkC(t, c, orig, want, s.m, s.n, s.k, ldc)
				})
			}
		}
	}
}

// checkC compares C (m×n, rows ldc apart) with want and checks that the
// padding columns beyond n still hold orig.
func checkC(t *testing.T, c, orig []float32, want []float64, m, n, k, ldc int) {
	t.Helper()
	for i := 0; i < m; i++ {
		for j := 0; j < ldc; j++ {
			got := float64(c[i*ldc+j])
			if j >= n {
				if c[i*ldc+j] != orig[i*ldc+j] {
					t.Fatalf("C[%d,%d] beyond n was written", i, j)
				}
				continue
			}
			if w := want[i*n+j]; math.Abs(got-w) > tol(k, w) {
				t.Fatalf("C[%d,%d] = %v, want %v", i, j, got, w)
			}
		}
	}
}

// TestMulGather multiplies a convolution's patch matrix, read from a
// zero-padded image through position and element tables (both ways round,
// as the E-step and the M-step do), and a gather with random tables, by a
// packed B, with each kernel.
func TestMulGather(t *testing.T) {
	type tables struct {
		name       string
		src        []float32
		rows, cols []int32
	}
	rng := rand.New(rand.NewPCG(5, 6))
	// A 3-channel 11×9 image padded by 2 to 15×13; 4×4 kernels: 12×10 positions.
	const c, hp, wp, kw = 3, 15, 13, 4
	img := randn(rng, c*hp*wp)
	var pos, elem []int32
	for y := 0; y+kw <= hp; y++ {
		for x := 0; x+kw <= wp; x++ {
			pos = append(pos, int32(y*wp+x))
		}
	}
	for ch := 0; ch < c; ch++ {
		for i := 0; i < kw; i++ {
			for j := 0; j < kw; j++ {
				elem = append(elem, int32((ch*hp+i)*wp+j))
			}
		}
	}
	random := make([]int32, 301)
	for i := range random {
		random[i] = int32(rng.IntN(200))
	}
	cases := []tables{
		{"positions×elements", img, pos, elem},
		{"elements×positions", img, elem, pos},
		{"random", randn(rng, 400), random[:37], random[37:]},
		{"one row", img, pos[:1], elem},
		{"long", randn(rng, 1000), random[:7], slices.Concat(random, random)},
	}
	for _, kern := range MicroKernels() {
		for _, tc := range cases {
			for _, n := range []int{1, 16, 64, 70, 200} {
				t.Run(fmt.Sprintf("%s/%s/n%d", kern, tc.name, n), func(t *testing.T) {
					m, k := len(tc.rows), len(tc.cols)
					a := make([]float32, m*k) // the gathered A, for the reference
					for i, r := range tc.rows {
						for p, off := range tc.cols {
							a[i*k+p] = tc.src[r+off]
						}
					}
					b := Matrix{Data: randn(rng, k*n), Stride: n}
					var pb PackedB
					pb.Pack(kern, k, n, 1, b)
					ldc := n + 3
					cm := randn(rng, m*ldc)
					want := naive(m, n, k, 1, Matrix{Data: a, Stride: k}, b, 1, cm, ldc)
					orig := slices.Clone(cm)
					MulGather(Gather{Src: tc.src, Rows: tc.rows, Cols: tc.cols}, &pb, cm, ldc, nil)
					checkC(t, cm, orig, want, m, n, k, ldc)
				})
			}
		}
	}
}

func TestMulGatherOutOfRange(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("an index past the source did not panic")
		}
	}()
	var pb PackedB
	pb.Pack(nil, 2, 3, 1, Matrix{Data: make([]float32, 6), Stride: 3})
	MulGather(Gather{Src: make([]float32, 10), Rows: []int32{0, 8}, Cols: []int32{0, 2}}, &pb, make([]float32, 6), 3, nil)
}

// TestParallelMul splits the columns over three goroutines, whatever
// documents: Pack must give the same bytes.
func TestPackedBReset(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, kern := range MicroKernels() {
		for _, s := range []struct{ k, n int }{{1, 1}, {5, 16}, {400, 169}, {169, 64}, {3, 200}} {
			b := Matrix{Data: randn(rng, s.k*s.n), Stride: s.n}
			var byHand PackedB
			data := byHand.Reset(kern, s.k, s.n)
			w := kern.PanelWidth()
			for j := 0; j < (s.n+w-1)/w*w; j++ {
				for r := 0; r < s.k; r++ {
					v := float32(0)
					if j < s.n {
						v = b.Data[r*s.n+j]
					}
					data[(j/w)*w*s.k+r*w+j%w] = v
				}
			}
			var packed PackedB
			packed.Pack(kern, s.k, s.n, 1, b)
			if !slices.Equal(packed.data, byHand.data) {
				t.Fatalf("%s %v: Pack differs from the layout Reset documents", kern, s)
			}
		}
	}
}

// TestMeasurePeak runs each FMA loop briefly: it must report a positive
// speed, and both cores together must not be slower than one.
func TestMeasurePeak(t *testing.T) {
	if len(PeakWidths()) == 0 && runtime.GOARCH == "amd64" && hasAVX2 {
		t.Fatal("no FMA loop on a CPU with AVX2")
	}
	for _, bits := range PeakWidths() {
		p, err := MeasurePeak(bits, 20e6)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(p)
		if !(p.PerCore > 0) || !(p.AllCores > 0) {
			t.Errorf("%d bits: %+v", bits, p)
		}
	}
	if _, err := MeasurePeak(128, 1e6); err == nil {
		t.Error("a 128-bit peak loop was measured; there is none")
	}
}

// TestTranspose transposes matrices of every shape class (whole 16×16
// blocks, edges in either direction, strides wider than the rows) and
// checks every element and that nothing beyond dst's n×m was written.
func TestTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	blocks := map[string]func([]float32, int, []float32, int){"go": nil}
	if transposeBlock16 != nil {
		blocks["avx512"] = transposeBlock16
	}
	for name, block := range blocks {
		for _, s := range []struct{ m, n int }{{1, 1}, {16, 16}, {32, 48}, {169, 64}, {64, 169}, {17, 15}, {3, 200}, {200, 3}, {33, 47}} {
			lds, ldd := s.n+3, s.m+5
			src := randn(rng, s.m*lds)
			dst := randn(rng, s.n*ldd)
			orig := slices.Clone(dst)
			transpose(block, dst, ldd, src, lds, s.m, s.n)
			for j := 0; j < s.n; j++ {
				for i := 0; i < ldd; i++ {
					got := dst[j*ldd+i]
					if i >= s.m {
						if got != orig[j*ldd+i] {
							t.Fatalf("%s %v: dst[%d,%d] beyond m was written", name, s, j, i)
						}
						continue
					}
					if want := src[i*lds+j]; got != want {
						t.Fatalf("%s %v: dst[%d,%d] = %v, want %v", name, s, j, i, got, want)
					}
				}
			}
		}
	}
}

func BenchmarkTranspose(b *testing.B) {
	src := make([]float32, 169*64)
	dst := make([]float32, 64*169)
	for i := 0; i < b.N; i++ {
		Transpose(dst, 169, src, 64, 169, 64)
	}
	b.ReportMetric(float64(len(src))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gfloats/s")
}
