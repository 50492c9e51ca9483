package gemm

// Transpose writes the transpose of the m×n matrix src (rows lds apart)
// into dst (n×m, rows ldd apart): dst[j·ldd+i] = src[i·lds+j]. With
// AVX-512 it moves 16×16 blocks through registers; the edges, and other
// CPUs, go element by element in 8×8 blocks.
func Transpose(dst []float32, ldd int, src []float32, lds int, m, n int) {
	transpose(transposeBlock16, dst, ldd, src, lds, m, n)
}

// transpose is Transpose with block16 (nil: none) for the 16×16 blocks.
func transpose(block16 func(dst []float32, ldd int, src []float32, lds int), dst []float32, ldd int, src []float32, lds int, m, n int) {
	if m == 0 || n == 0 {
		return
	}
	// One range check for each matrix, so the blocks need none.
	_ = src[(m-1)*lds+n-1]
	_ = dst[(n-1)*ldd+m-1]
	m16, n16 := 0, 0
	if block16 != nil {
		m16, n16 = m&^15, n&^15
		for i := 0; i < m16; i += 16 {
			for j := 0; j < n16; j += 16 {
				block16(dst[j*ldd+i:], ldd, src[i*lds+j:], lds)
			}
		}
	}
	// What the 16×16 blocks left: the columns from n16 for rows below m16,
	// then every column of the rows from m16.
	transposeGo(dst, ldd, src, lds, 0, m16, n16, n)
	transposeGo(dst, ldd, src, lds, m16, m, 0, n)
}

// transposeGo transposes rows [i0, i1) and columns [j0, j1) of src.
func transposeGo(dst []float32, ldd int, src []float32, lds int, i0, i1, j0, j1 int) {
	const bs = 8
	for ib := i0; ib < i1; ib += bs {
		for jb := j0; jb < j1; jb += bs {
			for i := ib; i < min(ib+bs, i1); i++ {
				row := src[i*lds:]
				for j := jb; j < min(jb+bs, j1); j++ {
					dst[j*ldd+i] = row[j]
				}
			}
		}
	}
}
