package gemm

import (
	"fmt"
	"math"
)

// kc is the number of k steps of one micro-kernel call: a 64-column B
// panel of kc steps (128 KB) stays in L2 while the tiles of a block stream
// past it, and C is loaded and stored once per kc steps (once for an MNIST
// kernel of 400 elements).
const kc = 512

// nc is the number of columns of B packed at once by Mul.
const nc = 2048

// Matrix is a read-only view of a row-major matrix, possibly transposed:
// element (i, j) of op(M) is Data[i*Stride+j], or Data[j*Stride+i] when T.
type Matrix struct {
	Data   []float32
	Stride int
	T      bool
}

// Gather is a matrix A read through two index tables:
// A[i, p] = Src[Rows[i] + Cols[p]], len(Rows) × len(Cols). A convolution's
// patch matrix is one: Rows holds where each position starts in the
// (padded) image, Cols where each kernel element sits relative to it.
type Gather struct {
	Src        []float32
	Rows, Cols []int32
}

// check panics unless every element of a lies inside Src: the kernels read
// without bounds checks.
func (a Gather) check() {
	if len(a.Rows) == 0 || len(a.Cols) == 0 {
		return
	}
	lo, hi := minMax(a.Rows)
	clo, chi := minMax(a.Cols)
	if int(lo)+int(clo) < 0 || int(hi)+int(chi) >= len(a.Src) {
		panic(fmt.Sprintf("gemm: gathered index range [%d, %d] outside a source of %d", int(lo)+int(clo), int(hi)+int(chi), len(a.Src)))
	}
}

func minMax(v []int32) (lo, hi int32) {
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// Workspace holds the buffers of one goroutine; reuse it to avoid
// allocation. The zero value is ready to use and runs the default kernel.
type Workspace struct {
	// Kernel is the micro-kernel Mul runs; nil means Default().
	MicroKernel *MicroKernel

	b          []float32
	rows, cols []int32
	tile       []float32
	tileRows   [MR]int32
}

func (ws *Workspace) kernel() *MicroKernel {
	if ws.MicroKernel == nil {
		return Default()
	}
	return ws.MicroKernel
}

// Mul computes C ← α·op(A)·op(B) + β·C for op(A) (m×k), op(B) (k×n) and C
// (m×n, row-major, rows ldc apart), in one goroutine, with ws's buffers
// and kernel (nil ws: a new Workspace). Matrices must have fewer than 2³¹
// elements.
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
	if len(a.Data) > math.MaxInt32 {
		panic("gemm: A has 2³¹ elements or more")
	}
	kern := ws.kernel()
	// A is read in place: row i starts at i·Stride (or i when transposed)
	// and step p is p (or p·Stride) further on.
	ws.rows = grow(ws.rows, m)
	for i := range ws.rows {
		if a.T {
			ws.rows[i] = int32(i)
		} else {
			ws.rows[i] = int32(i * a.Stride)
		}
	}
	ws.cols = grow(ws.cols, k)
	for p := range ws.cols {
		if a.T {
			ws.cols[p] = int32(p * a.Stride)
		} else {
			ws.cols[p] = int32(p)
		}
	}
	Gather{Src: a.Data, Rows: ws.rows, Cols: ws.cols}.check()
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			ws.b = packB(ws.b, b, pc, jc, kb, nb, alpha, kern.nr)
			macro(kern, a.Data, ws.rows, ws.cols[pc:pc+kb], ws.b, nb, kb*kern.nr, c[jc:], ldc, ws)
		}
	}
}

// MulGather adds A·B to C for a gathered A (len(Rows) × len(Cols)) and a
// packed B (len(Cols) × B.N), C's rows ldc apart, in one goroutine with the
// kernel B was packed for. It panics if an index of A falls outside Src.
func MulGather(a Gather, b *PackedB, c []float32, ldc int, ws *Workspace) {
	if len(a.Cols) != b.K {
		panic(fmt.Sprintf("gemm: MulGather: A has %d columns, B %d rows", len(a.Cols), b.K))
	}
	if len(a.Rows) == 0 || b.N == 0 || b.K == 0 {
		return
	}
	a.check()
	if ws == nil {
		ws = new(Workspace)
	}
	for pc := 0; pc < b.K; pc += kc {
		kb := min(kc, b.K-pc)
		macro(b.kern, a.Src, a.Rows, a.Cols[pc:pc+kb], b.data[pc*b.kern.nr:], b.N, b.K*b.kern.nr, c, ldc, ws)
	}
}

// macro adds A·B to C, where A has len(rows) rows read through the index
// tables and len(cols) steps, and B is packed in panels of kern.nr columns
// panelLen floats apart, nb columns in all. Tiles that would write past
// C's rows or columns go through ws.tile.
func macro(kern *MicroKernel, src []float32, rows, cols []int32, b []float32, nb, panelLen int, c []float32, ldc int, ws *Workspace) {
	nr, kb, m := kern.nr, len(cols), len(rows)
	ws.tile = grow(ws.tile, MR*nr)
	r := &ws.tileRows
	for jp := 0; jp*nr < nb; jp++ {
		bp := b[jp*panelLen:]
		width := min(nr, nb-jp*nr)
		f := kern.tile(width)
		computed := (width + kern.vec - 1) / kern.vec * kern.vec
		for i0 := 0; i0 < m; i0 += MR {
			valid := min(MR, m-i0)
			copy(r[:], rows[i0:i0+valid])
			for i := valid; i < MR; i++ {
				r[i] = r[valid-1] // any readable row: its result is dropped
			}
			ct := c[i0*ldc+jp*nr:]
			if valid == MR && computed == width && len(ct) >= (MR-1)*ldc+width {
				f(kb, src, r, cols, bp, ct, ldc)
				continue
			}
			t := ws.tile
			clear(t)
			f(kb, src, r, cols, bp, t, nr)
			for i := 0; i < valid; i++ {
				row := ct[i*ldc : i*ldc+width]
				for j := range row {
					row[j] += t[i*nr+j]
				}
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

// packB copies α·op(B)[p0:p0+kb, j0:j0+nb] into panels of nr columns, each
// stored step-major (nr values per step), zero-padding the last panel. A
// transposed B is moved by Transpose, a panel at a time.
func packB(dst []float32, b Matrix, p0, j0, kb, nb int, alpha float32, nr int) []float32 {
	panels := (nb + nr - 1) / nr
	dst = grow(dst, panels*nr*kb)
	for jp := 0; jp < panels; jp++ {
		out := dst[jp*nr*kb : (jp+1)*nr*kb]
		cols := min(nr, nb-jp*nr)
		if b.T {
			Transpose(out, nr, b.Data[(j0+jp*nr)*b.Stride+p0:], b.Stride, cols, kb)
		}
		for p := 0; p < kb; p++ {
			o := out[p*nr : p*nr+nr]
			if !b.T {
				copy(o, b.Data[(p0+p)*b.Stride+j0+jp*nr:][:cols])
			}
			if alpha != 1 {
				for j := range o[:cols] {
					o[j] *= alpha
				}
			}
			clear(o[cols:])
		}
	}
	return dst
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
