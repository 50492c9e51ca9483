//go:build !amd64

package gemm

var (
	narrowDot2 func(x0, x1, w *float32, chunks int, acc *float32)
	narrowAdd  func(dst, x *float32, ldx int, r *float32, ldr, rows, chunks int)
)
