package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var benchSink float32

// BenchmarkPeak measures the register-only FMA loops: the machine's peak,
// the denominator of every %peak this project reports.
func BenchmarkPeak(b *testing.B) {
	for _, bits := range PeakWidths() {
		b.Run(fmt.Sprint(bits), func(b *testing.B) {
			var p Peak
			for i := 0; i < b.N; i++ {
				var err error
				if p, err = MeasurePeak(bits, 200*time.Millisecond); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(p.PerCore, "GFLOP/s/core")
			b.ReportMetric(p.AllCores, "GFLOP/s")
		})
	}
}

// benchMul times one C = A·B of the given shape in one goroutine with
// each kernel and reports GFLOP/s (a multiply-add counts as 2).
func benchMul(b *testing.B, m, n, k int, tA, tB bool) {
	for _, kern := range MicroKernels() {
		b.Run(kern.Name(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			lda, ldb := k, n
			if tA {
				lda = m
			}
			if tB {
				ldb = k
			}
			a := Matrix{Data: randn(rng, m*k), Stride: lda, T: tA}
			bm := Matrix{Data: randn(rng, k*n), Stride: ldb, T: tB}
			c := make([]float32, m*n)
			ws := &Workspace{MicroKernel: kern}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Mul(m, n, k, 1, a, bm, 0, c, n, ws)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			benchSink = c[0]
		})
	}
}

func BenchmarkSquare(b *testing.B) {
	for _, n := range []int{256, 1024} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchMul(b, n, n, n, false, false) })
	}
}

// The classifier's products: 60 000 rows of 576 features times 10 classes.
func BenchmarkSoftmax(b *testing.B) { benchMul(b, 60000, 10, 576, false, true) }

// benchConv times one image's convolution as a gathered product, the way
// the fast ops run it: A the patches read from a zero-padded c×hp×wp image,
// B packed kernels (d×K). E-step: positions × elements; M-step: elements ×
// positions.
func benchConv(b *testing.B, c, hp, wp, w, k int, mstep bool) {
	for _, kern := range MicroKernels() {
		b.Run(kern.Name(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			img := randn(rng, c*hp*wp)
			var pos, elem []int32
			for y := 0; y+w <= hp; y++ {
				for x := 0; x+w <= wp; x++ {
					pos = append(pos, int32(y*wp+x))
				}
			}
			for ch := 0; ch < c; ch++ {
				for i := 0; i < w; i++ {
					for j := 0; j < w; j++ {
						elem = append(elem, int32((ch*hp+i)*wp+j))
					}
				}
			}
			rows, cols := pos, elem
			if mstep {
				rows, cols = elem, pos
			}
			var pb PackedB
			pb.Pack(kern, len(cols), k, 1, Matrix{Data: randn(rng, len(cols)*k), Stride: k})
			out := make([]float32, len(rows)*k)
			ws := new(Workspace)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				MulGather(Gather{Src: img, Rows: rows, Cols: cols}, &pb, out, k, ws)
			}
			b.ReportMetric(2*float64(len(rows)*len(cols)*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			benchSink = out[0]
		})
	}
}

// One MNIST image, 64 kernels of 20×20, padding 2.
func BenchmarkConvMNIST(b *testing.B) {
	b.Run("E", func(b *testing.B) { benchConv(b, 1, 32, 32, 20, 64, false) })
	b.Run("M", func(b *testing.B) { benchConv(b, 1, 32, 32, 20, 64, true) })
}

// One STL-10 image, 200 kernels of 3×15×15.
func BenchmarkConvSTL10(b *testing.B) {
	b.Run("E", func(b *testing.B) { benchConv(b, 3, 96, 96, 15, 200, false) })
	b.Run("M", func(b *testing.B) { benchConv(b, 3, 96, 96, 15, 200, true) })
}
