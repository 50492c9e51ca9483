package gemm

// PackedA holds α·A (M×K) in the micro-kernel's layout: panels of 6 rows,
// each K steps of 6 values, the last panel zero-padded. Pack it once and
// multiply it with many B.
type PackedA struct {
	M, K int
	data []float32
}

// Pack stores α·op(A) (m×k), reusing the buffer.
func (p *PackedA) Pack(m, k int, alpha float32, a Matrix) {
	p.M, p.K = m, k
	p.data = packA(p.data, a, 0, 0, m, k, alpha)
}

// PackedB holds B (K×N) in the micro-kernel's layout: panels of 16 columns,
// each K steps of 16 values, the last panel zero-padded. Callers that build
// B themselves (a convolution's patches) write the panels directly.
type PackedB struct {
	K, N int
	data []float32
}

// Panels returns the number of 16-column panels of a K×N matrix.
func Panels(n int) int { return (n + nr - 1) / nr }

// PanelWidth is the number of columns of a B panel.
const PanelWidth = nr

// Reset sizes p for a k×n matrix and returns its data: panel j holds
// columns 16j…16j+15, element (r, 16j+c) at [j·16k + 16r + c]. Padding
// columns must be zero; Reset does not clear the data.
func (p *PackedB) Reset(k, n int) []float32 {
	p.K, p.N = k, n
	p.data = grow(p.data, Panels(n)*nr*k)
	return p.data
}

// Pack stores op(B) (k×n), reusing the buffer.
func (p *PackedB) Pack(k, n int, b Matrix) {
	p.K, p.N = k, n
	p.data = packB(p.data, b, 0, 0, k, n)
}

// MulPacked adds A·B to C (A.M × B.N, rows ldc apart) in one goroutine.
func MulPacked(a *PackedA, b *PackedB, c []float32, ldc int, ws *Workspace) {
	if a.K != b.K {
		panic("gemm: MulPacked: inner dimensions differ")
	}
	if ws == nil {
		ws = new(Workspace)
	}
	macro(a.M, b.N, a.K, a.data, b.data, ws, c, ldc)
}
