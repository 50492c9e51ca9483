package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var benchSink float32

// benchMul times one C = A·B of the given shape in one goroutine and
// reports GFLOP/s (a multiply-add counts as 2).
func benchMul(b *testing.B, m, n, k int, tA, tB bool) {
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
	ws := new(Workspace)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Mul(m, n, k, 1, a, bm, 0, c, n, ws)
	}
	b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	benchSink = c[0]
}

// The MNIST E-step product per image: θ (64×400) · patches (400×169).
func BenchmarkMNISTEStep(b *testing.B) { benchMul(b, 64, 169, 400, false, false) }

// The MNIST M-step product per image: γ (64×169) · patchesᵀ (169×400).
func BenchmarkMNISTMStep(b *testing.B) { benchMul(b, 64, 400, 169, false, true) }

// The STL-10 E-step per image: θ (200×675) · patches (675×6724).
func BenchmarkSTL10EStep(b *testing.B) { benchMul(b, 200, 6724, 675, false, false) }

func BenchmarkSquare(b *testing.B) {
	for _, n := range []int{256, 1024} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchMul(b, n, n, n, false, false) })
	}
}

func BenchmarkKernel(b *testing.B) {
	const k = 256
	rng := rand.New(rand.NewPCG(1, 2))
	a, bp, c := randn(rng, k*mr), randn(rng, k*nr), make([]float32, mr*nr)
	for i := 0; i < b.N; i++ {
		kernel(k, a, bp, c, nr)
	}
	b.ReportMetric(2*float64(mr*nr*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	benchSink = c[0]
}

// The MNIST M-step product transposed: patches (400×169) · γᵀ (169×64).
func BenchmarkMNISTMStepT(b *testing.B) { benchMul(b, 400, 64, 169, false, true) }
