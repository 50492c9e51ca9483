package gemm

import (
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Implementation is gonum's pure-Go BLAS with this package's Sgemm, which
// Gorgonia uses for every float32 matrix product (Conv2d and MatMul among
// them) once it is installed with G.Use(gemm.Implementation{}). Note that
// G.Use sets the BLAS of the whole process.
type Implementation struct {
	gonum.Implementation
	Kernel *Kernel // nil: Default()
}

var _ blas.Float32 = Implementation{}

// Sgemm computes C ← α·op(A)·op(B) + β·C with the packed kernel, its
// columns split over GOMAXPROCS goroutines when the product is large.
func (impl Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	parallelMul(runtime.GOMAXPROCS(0), impl.Kernel, m, n, k, alpha,
		Matrix{Data: a, Stride: lda, T: tA != blas.NoTrans},
		Matrix{Data: b, Stride: ldb, T: tB != blas.NoTrans},
		beta, c, ldc)
}
