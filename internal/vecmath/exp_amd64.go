package vecmath

import "golang.org/x/sys/cpu"

var (
	useAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	useAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasBMI2
)

// expAVX2 computes exp over len(src) elements, a multiple of 8.
//
//go:noescape
func expAVX2(dst, src []float32)

// sumExpAVX2 returns Σ exp(x[i] − m) over len(x), a multiple of 8.
//
//go:noescape
func sumExpAVX2(x []float32, m float32) float64

// maxAVX2 returns the maximum of x (len a multiple of 8, at least 8) and
// whether x holds a NaN.
//
//go:noescape
func maxAVX2(x []float32) (m float32, nan bool)

// The AVX-512 forms take slices of any length (see avx512_amd64.s).

//go:noescape
func expAVX512(dst, src []float32)

//go:noescape
func expSumAVX512(dst, src []float32, m float32) float64

//go:noescape
func sumExpAVX512(x []float32, m float32) float64

//go:noescape
func maxAVX512(x []float32) (m float32, nan bool)

//go:noescape
func scaleAVX512(x []float32, c float32)

//go:noescape
func scaleAddAVX512(x []float32, c float32, acc []float32)
