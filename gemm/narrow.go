package gemm

import "fmt"

// NarrowRows is the most rows a Narrow matrix holds: as many classes as
// CIFAR-10, MNIST and STL-10 have.
const NarrowRows = 10

// narrowChunk is the number of columns a Narrow packs together.
const narrowChunk = 32

// NarrowFast reports whether this CPU has the assembly kernels of the
// narrow products; without them they run as plain Go loops, slower than
// a general GEMM.
func NarrowFast() bool { return narrowDot2 != nil }

// Narrow is a float32 matrix of at most NarrowRows rows and many columns
// (a linear classifier's weights W, or its gradient), packed for the two
// products a classifier makes with a block of feature rows X:
// MulNarrow (the scores X·Wᵀ) and Narrow.AddMul (the gradient G += Rᵀ·X).
// Both read each row of X once, at memory speed, where a general GEMM's
// tiles are mostly empty for ten columns.
//
// The packing: for each chunk of 32 columns, the 32 values of every row
// in turn (NarrowRows rows, the unused ones zero); then the last Cols%32
// columns row-major.
type Narrow struct {
	Rows, Cols int
	packed     []float32
}

// NewNarrow returns a zero Narrow of rows×cols (rows ≤ NarrowRows).
func NewNarrow(rows, cols int) (*Narrow, error) {
	if rows < 1 || rows > NarrowRows || cols < 1 {
		return nil, fmt.Errorf("gemm: a narrow matrix of %d×%d: want 1 to %d rows and at least one column", rows, cols, NarrowRows)
	}
	return &Narrow{Rows: rows, Cols: cols, packed: make([]float32, NarrowRows*cols)}, nil
}

// chunks returns the number of whole chunks of columns.
func (m *Narrow) chunks() int { return m.Cols / narrowChunk }

// at returns the index in packed of row r, column j.
func (m *Narrow) at(r, j int) int {
	if c := j / narrowChunk; c < m.chunks() {
		return (c*NarrowRows+r)*narrowChunk + j%narrowChunk
	}
	tail := m.Cols % narrowChunk
	return m.chunks()*NarrowRows*narrowChunk + r*tail + j%narrowChunk
}

// Set sets the matrix to w, Rows×Cols row-major.
func (m *Narrow) Set(w []float32) {
	for r := 0; r < m.Rows; r++ {
		for j, v := range w[r*m.Cols : (r+1)*m.Cols] {
			m.packed[m.at(r, j)] = v
		}
	}
}

// Zero sets every value to 0.
func (m *Narrow) Zero() { clear(m.packed) }

// AddTo adds the matrix to dst, Rows×Cols row-major, in float64.
func (m *Narrow) AddTo(dst []float64) {
	for r := 0; r < m.Rows; r++ {
		row := dst[r*m.Cols : (r+1)*m.Cols]
		for j := range row {
			row[j] += float64(m.packed[m.at(r, j)])
		}
	}
}

// MulNarrow sets z[i·ldz + r] = Σ_j x[i·ldx + j]·W[r][j] for each row
// r < w.Rows of w and each of the n rows of x (w.Cols values each, ldx
// apart). Each row's sum is taken in an order that depends on neither the
// rows beside it nor the number of threads.
func MulNarrow(z []float32, ldz int, x []float32, n, ldx int, w *Narrow) {
	d := w.Cols
	if n < 1 || ldx < d || ldz < w.Rows || len(x) < (n-1)*ldx+d || len(z) < (n-1)*ldz+w.Rows {
		panic(fmt.Sprintf("gemm: MulNarrow of %d rows (%d values, %d apart) into %d values %d apart", n, len(x), ldx, len(z), ldz))
	}
	chunks := w.chunks()
	var acc [2 * NarrowRows * 16]float32
	for i := 0; i < n; i += 2 {
		x0 := x[i*ldx : i*ldx+d]
		x1 := x0 // an odd last row is computed twice, its copy dropped
		if i+1 < n {
			x1 = x[(i+1)*ldx : (i+1)*ldx+d]
		}
		if chunks > 0 && narrowDot2 != nil {
			narrowDot2(&x0[0], &x1[0], &w.packed[0], chunks, &acc[0])
		} else {
			narrowDot2Go(x0, x1, w.packed, chunks, acc[:])
		}
		for k, xr := range [2][]float32{x0, x1} {
			if i+k >= n {
				break
			}
			zr := z[(i+k)*ldz : (i+k)*ldz+w.Rows]
			for r := range zr {
				var s float32
				for _, v := range acc[(k*NarrowRows+r)*16 : (k*NarrowRows+r+1)*16] {
					s += v
				}
				for j := chunks * narrowChunk; j < d; j++ {
					s += xr[j] * w.packed[w.at(r, j)]
				}
				zr[r] = s
			}
		}
	}
}

// AddMul adds Rᵀ·X to the matrix: G[r][j] += Σ_i rr[i·ldr + r]·x[i·ldx + j]
// over the n rows of x (m.Cols values each, ldx apart) and of rr, whose
// rows hold NarrowRows values ldr apart (those past m.Rows are read and
// do not matter).
func (m *Narrow) AddMul(rr []float32, ldr int, x []float32, n, ldx int) {
	d := m.Cols
	if n < 1 || ldx < d || ldr < NarrowRows || len(x) < (n-1)*ldx+d || len(rr) < (n-1)*ldr+NarrowRows {
		panic(fmt.Sprintf("gemm: AddMul of %d rows (%d values, %d apart; %d weights, %d apart)", n, len(x), ldx, len(rr), ldr))
	}
	chunks := m.chunks()
	if chunks > 0 && narrowAdd != nil {
		narrowAdd(&m.packed[0], &x[0], ldx, &rr[0], ldr, n, chunks)
	} else {
		narrowAddGo(m.packed, x, ldx, rr, ldr, n, chunks)
	}
	for i := 0; i < n; i++ {
		for r := 0; r < m.Rows; r++ {
			a := rr[i*ldr+r]
			for j := chunks * narrowChunk; j < d; j++ {
				m.packed[m.at(r, j)] += a * x[i*ldx+j]
			}
		}
	}
}

// narrowDot2Go is narrowDot2AVX512 in Go: the same sums in the same
// order, lane by lane (each product rounded before it is added, where
// the kernel fuses the two).
func narrowDot2Go(x0, x1, w []float32, chunks int, acc []float32) {
	clear(acc)
	for c := 0; c < chunks; c++ {
		for h := 0; h < 2; h++ {
			for r := 0; r < NarrowRows; r++ {
				wr := w[(c*NarrowRows+r)*narrowChunk+h*16:]
				for l := 0; l < 16; l++ {
					j := c*narrowChunk + h*16 + l
					acc[r*16+l] += x0[j] * wr[l]
					acc[(NarrowRows+r)*16+l] += x1[j] * wr[l]
				}
			}
		}
	}
}

// narrowAddGo is narrowAddAVX512 in Go.
func narrowAddGo(g, x []float32, ldx int, rr []float32, ldr, n, chunks int) {
	for c := 0; c < chunks; c++ {
		for i := 0; i < n; i++ {
			xi := x[i*ldx+c*narrowChunk : i*ldx+(c+1)*narrowChunk]
			for r := 0; r < NarrowRows; r++ {
				a := rr[i*ldr+r]
				gr := g[(c*NarrowRows+r)*narrowChunk : (c*NarrowRows+r+1)*narrowChunk]
				for l, v := range xi {
					gr[l] += a * v
				}
			}
		}
	}
}
