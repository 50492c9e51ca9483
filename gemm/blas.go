package gemm

import (
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Implementation is gonum's pure-Go BLAS with this package's Sgemm. Nothing
// in calm installs it: a program that wants Gorgonia's own float32 products
// (Conv2d, MatMul) to use it calls G.Use(gemm.Implementation{}), which sets
// the BLAS of the whole process.
type Implementation struct {
	gonum.Implementation
	MicroKernel *MicroKernel // nil: Default()
}

var _ blas.Float32 = Implementation{}

// Sgemm computes C ← α·op(A)·op(B) + β·C with the packed kernel, its
// columns split over GOMAXPROCS goroutines when the product is large.
func (impl Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	parallelMul(runtime.GOMAXPROCS(0), impl.MicroKernel, m, n, k, alpha,
		Matrix{Data: a, Stride: lda, T: tA != blas.NoTrans},
		Matrix{Data: b, Stride: ldb, T: tB != blas.NoTrans},
		beta, c, ldc)
}
