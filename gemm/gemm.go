package gemm

import (
	"runtime"
	"sync"
)

// Micro-kernel tile and cache block sizes. A block of A (mc×kc floats,
// 96 KB) stays in L2, a panel of B (kc×16, 16 KB) in L1.
const (
	mr = 6
	nr = 16
	kc = 256
	mc = 96
	nc = 2048
)

// kernel adds a[k×6 panel]ᵀ · b[k×16 panel] to the 6×16 tile of c whose rows
// are ldc apart. The assembly kernel replaces it where the CPU allows.
var kernel = kernelGo

// KernelName says which micro-kernel runs: "avx2-fma" or "go".
var KernelName = "go"

// kernelGo is the portable micro-kernel.
func kernelGo(k int, a, b, c []float32, ldc int) {
	var acc [mr][nr]float32
	for p := 0; p < k; p++ {
		bp := b[p*nr : p*nr+nr]
		for i := 0; i < mr; i++ {
			ai := a[p*mr+i]
			row := &acc[i]
			for j, bv := range bp {
				row[j] += ai * bv
			}
		}
	}
	for i := 0; i < mr; i++ {
		row := c[i*ldc : i*ldc+nr]
		for j := range row {
			row[j] += acc[i][j]
		}
	}
}

// Matrix is a read-only view of a row-major matrix, possibly transposed:
// element (i, j) of op(M) is Data[i*Stride+j], or Data[j*Stride+i] when T.
type Matrix struct {
	Data   []float32
	Stride int
	T      bool
}

// Workspace holds the packing buffers of one goroutine; reuse it to avoid
// allocation. The zero value is ready to use.
type Workspace struct {
	a, b []float32
	tile [mr * nr]float32
}

// Mul computes C ← α·A·B + β·C for A (m×k), B (k×n) and C (m×n, row-major,
// rows ldc apart), in one goroutine, packing into ws (nil: a new one).
func Mul(m, n, k int, alpha float32, a, b Matrix, beta float32, c []float32, ldc int, ws *Workspace) {
	if m == 0 || n == 0 {
		return
	}
	scale(m, n, beta, c, ldc)
	if k == 0 || alpha == 0 {
		return
	}
	if ws == nil {
		ws = new(Workspace)
	}
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			ws.b = packB(ws.b, b, pc, jc, kb, nb)
			for ic := 0; ic < m; ic += mc {
				mb := min(mc, m-ic)
				ws.a = packA(ws.a, a, ic, pc, mb, kb, alpha)
				macro(mb, nb, kb, ws.a, ws.b, ws, c[ic*ldc+jc:], ldc)
			}
		}
	}
}

// scale sets C ← β·C; β = 0 clears C even where it holds NaN.
func scale(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// packA copies α·A[i0:i0+mb, p0:p0+kb] into panels of 6 rows, each stored
// k-major (6 values per step), zero-padding the last panel.
func packA(dst []float32, a Matrix, i0, p0, mb, kb int, alpha float32) []float32 {
	panels := (mb + mr - 1) / mr
	dst = grow(dst, panels*mr*kb)
	for ip := 0; ip < panels; ip++ {
		out := dst[ip*mr*kb : (ip+1)*mr*kb]
		for r := 0; r < mr; r++ {
			i := ip*mr + r
			if i >= mb {
				for p := 0; p < kb; p++ {
					out[p*mr+r] = 0
				}
				continue
			}
			if !a.T {
				row := a.Data[(i0+i)*a.Stride+p0:]
				for p := 0; p < kb; p++ {
					out[p*mr+r] = alpha * row[p]
				}
				continue
			}
			for p := 0; p < kb; p++ {
				out[p*mr+r] = alpha * a.Data[(p0+p)*a.Stride+i0+i]
			}
		}
	}
	return dst
}

// packB copies B[p0:p0+kb, j0:j0+nb] into panels of 16 columns, each stored
// k-major (16 values per step), zero-padding the last panel.
func packB(dst []float32, b Matrix, p0, j0, kb, nb int) []float32 {
	panels := (nb + nr - 1) / nr
	dst = grow(dst, panels*nr*kb)
	for jp := 0; jp < panels; jp++ {
		out := dst[jp*nr*kb : (jp+1)*nr*kb]
		cols := min(nr, nb-jp*nr)
		if !b.T {
			for p := 0; p < kb; p++ {
				o := out[p*nr : p*nr+nr]
				copy(o, b.Data[(p0+p)*b.Stride+j0+jp*nr:][:cols])
				clear(o[cols:])
			}
			continue
		}
		for p := 0; p < kb; p++ {
			o := out[p*nr : p*nr+nr]
			for j := 0; j < cols; j++ {
				o[j] = b.Data[(j0+jp*nr+j)*b.Stride+p0+p]
			}
			clear(o[cols:])
		}
	}
	return dst
}

// macro adds the product of packed blocks a (mb×kb) and b (kb×nb) to C,
// running the micro-kernel over every 6×16 tile; partial tiles at the edges
// go through ws.tile.
func macro(mb, nb, kb int, a, b []float32, ws *Workspace, c []float32, ldc int) {
	for jp := 0; jp*nr < nb; jp++ {
		bp := b[jp*nr*kb:]
		cols := min(nr, nb-jp*nr)
		for ip := 0; ip*mr < mb; ip++ {
			ap := a[ip*mr*kb:]
			rows := min(mr, mb-ip*mr)
			ct := c[ip*mr*ldc+jp*nr:]
			if rows == mr && cols == nr && len(ct) >= (mr-1)*ldc+nr {
				kernel(kb, ap, bp, ct, ldc)
				continue
			}
			t := ws.tile[:]
			clear(t)
			kernel(kb, ap, bp, t, nr)
			for i := 0; i < rows; i++ {
				row := ct[i*ldc : i*ldc+cols]
				for j := range row {
					row[j] += t[i*nr+j]
				}
			}
		}
	}
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// ParallelMul is Mul with the columns of C split over GOMAXPROCS goroutines
// when the product is large enough to gain from it.
func ParallelMul(m, n, k int, alpha float32, a, b Matrix, beta float32, c []float32, ldc int) {
	workers := runtime.GOMAXPROCS(0)
	if workers == 1 || m*n*k < 1<<21 || n < 2*nr {
		Mul(m, n, k, alpha, a, b, beta, c, ldc, nil)
		return
	}
	// Split on multiples of the panel width so no tile is cut.
	panels := (n + nr - 1) / nr
	workers = min(workers, panels)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*panels/workers*nr, min(n, (w+1)*panels/workers*nr)
		bs := b
		if bs.T {
			bs.Data = b.Data[lo*b.Stride:]
		} else {
			bs.Data = b.Data[lo:]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			Mul(m, hi-lo, k, alpha, a, bs, beta, c[lo:], ldc, nil)
		}()
	}
	wg.Wait()
}
