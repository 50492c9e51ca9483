package gemm

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run gen_kernels.go

// The assembly kernels of kernels_amd64.s. Each adds to the 6×(16·v) tile
// of C (v = 1…4 ZMM vectors per row, 64-column B panels) or the 6×16 tile
// (two YMM vectors per row, 16-column panels).
//
//go:noescape
func gatherAVX512x1(k int, src *float32, rows, cols *int32, b, c *float32, ldc int)

//go:noescape
func gatherAVX512x2(k int, src *float32, rows, cols *int32, b, c *float32, ldc int)

//go:noescape
func gatherAVX512x3(k int, src *float32, rows, cols *int32, b, c *float32, ldc int)

//go:noescape
func gatherAVX512x4(k int, src *float32, rows, cols *int32, b, c *float32, ldc int)

//go:noescape
func gatherAVX2(k int, src *float32, rows, cols *int32, b, c *float32, ldc int)

// The register-only FMA loops of peak_amd64.s: n iterations of peakChains
// independent FMAs.
//
//go:noescape
func fmaPeakZMM(n int)

//go:noescape
func fmaPeakYMM(n int)

var (
	hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

var available = func() []*MicroKernel {
	var ks []*MicroKernel
	if hasAVX512 {
		ks = append(ks, &MicroKernel{name: "avx512", nr: 64, vec: 16, fns: []tileFunc{
			asmTile(gatherAVX512x1), asmTile(gatherAVX512x2), asmTile(gatherAVX512x3), asmTile(gatherAVX512x4)}})
	}
	if hasAVX2 {
		ks = append(ks, &MicroKernel{name: "avx2", nr: 16, vec: 16, fns: []tileFunc{asmTile(gatherAVX2)}})
	}
	return append(ks, goKernel)
}()

// peakLoops are the FMA loops this CPU can run, by vector width in bits.
func peakLoops() map[int]func(int) {
	loops := map[int]func(int){}
	if hasAVX512 {
		loops[512] = fmaPeakZMM
	}
	if hasAVX2 {
		loops[256] = fmaPeakYMM
	}
	return loops
}

//go:noescape
func transpose16AVX512(dst *float32, ldd int, src *float32, lds int)

// transposeBlock16 transposes 16×16 blocks, when the CPU has a kernel for
// it.
var transposeBlock16 = func() func(dst []float32, ldd int, src []float32, lds int) {
	if !hasAVX512 {
		return nil
	}
	return func(dst []float32, ldd int, src []float32, lds int) {
		transpose16AVX512(unsafe.SliceData(dst), ldd, unsafe.SliceData(src), lds)
	}
}()
