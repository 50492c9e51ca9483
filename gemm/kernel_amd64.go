package gemm

import "golang.org/x/sys/cpu"

// kernelAVX2 is the assembly micro-kernel: C[0:6,0:16] += Apanelᵀ·Bpanel
// over k steps. c must have 5·ldc+16 floats from its start.
//
//go:noescape
func kernelAVX2(k int, a, b, c *float32, ldc int)

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		kernel = func(k int, a, b, c []float32, ldc int) {
			kernelAVX2(k, &a[0], &b[0], &c[0], ldc)
		}
		KernelName = "avx2-fma"
	}
}
