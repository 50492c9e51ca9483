// Package gemm multiplies float32 matrices fast with the plain Go toolchain:
// C ← α·op(A)·op(B) + β·C, the BLAS Sgemm.
//
// It packs blocks of A into panels of 6 rows and blocks of B into panels of
// 16 columns, and runs a 6×16 micro-kernel over them: on CPUs with AVX2 and
// FMA (checked at run time with golang.org/x/sys/cpu) a hand-written Go
// assembly kernel holding the 6×16 tile of C in twelve YMM registers,
// elsewhere a portable Go kernel that computes the same sums. The tests
// check the two against each other and against float64 loops.
//
// It is its own package because both the fast convolution ops (package
// graph) and Gorgonia's stock ops use it: [Implementation] is a gonum
// blas.Float32 whose Sgemm is this one, so
//
//	G.Use(gemm.Implementation{})
//
// speeds up every float32 matrix product of Gorgonia, Conv2d included.
package gemm
