//go:build !amd64

package gemm

var available = []*MicroKernel{goKernel}

func peakLoops() map[int]func(int) { return nil }

var transposeBlock16 func(dst []float32, ldd int, src []float32, lds int)
