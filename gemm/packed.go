package gemm

// PackedB holds α·B (K×N) in a kernel's layout: panels of PanelWidth
// columns, each K steps of PanelWidth values, the last panel zero-padded.
// Pack it once and multiply it with many A.
type PackedB struct {
	K, N int
	kern *MicroKernel
	data []float32
}

// Pack stores α·op(B) (k×n) for kernel kern (nil: Default()), reusing the
// buffer.
func (p *PackedB) Pack(kern *MicroKernel, k, n int, alpha float32, b Matrix) {
	if kern == nil {
		kern = Default()
	}
	p.K, p.N, p.kern = k, n, kern
	p.data = packB(p.data, b, 0, 0, k, n, alpha, kern.nr)
}

// Reset sizes p for a k×n matrix in kern's layout (nil: Default()) and
// returns its data for the caller to fill: with w = kern.PanelWidth(),
// element (r, w·j + c) sits at [j·w·k + w·r + c]. Padding columns must be
// zero; Reset does not clear the data.
func (p *PackedB) Reset(kern *MicroKernel, k, n int) []float32 {
	if kern == nil {
		kern = Default()
	}
	p.K, p.N, p.kern = k, n, kern
	p.data = grow(p.data, (n+kern.nr-1)/kern.nr*kern.nr*k)
	return p.data
}

// Kernel returns the kernel p was packed for.
func (p *PackedB) MicroKernel() *MicroKernel { return p.kern }
