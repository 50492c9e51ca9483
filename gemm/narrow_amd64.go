package gemm

// The kernels of narrow_amd64.s.
//
//go:noescape
func narrowDot2AVX512(x0, x1, w *float32, chunks int, acc *float32)

//go:noescape
func narrowAddAVX512(dst, x *float32, ldx int, r *float32, ldr, rows, chunks int)

// The narrow kernels of this CPU, nil without AVX-512 (then narrow.go's
// Go loops stand in).
var narrowDot2, narrowAdd = func() (func(x0, x1, w *float32, chunks int, acc *float32), func(dst, x *float32, ldx int, r *float32, ldr, rows, chunks int)) {
	if !hasAVX512 {
		return nil, nil
	}
	return narrowDot2AVX512, narrowAddAVX512
}()
