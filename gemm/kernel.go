package gemm

import (
	"fmt"
	"unsafe"
)

// MR is the number of rows of C every micro-kernel computes at once.
const MR = 6

// A MicroKernel is the innermost loop of a product and the tile it
// computes (not to be confused with a CALM kernel θ_k): it adds to an
// MR×PanelWidth tile of C the product of an MR×k block of A, read through
// two index tables (A[i,p] = src[rows[i] + cols[p]]), with a packed k×
// PanelWidth panel of B. Reading A through index tables means a
// convolution's patches are never copied: the tables point into the image.
//
// Micro-kernels are chosen by the CPU at run time; every one computes the
// same sums (up to float32 rounding order), and the tests run each one that
// the CPU can run.
type MicroKernel struct {
	name string
	nr   int        // columns of a B panel
	vec  int        // columns of one variant step
	fns  []tileFunc // fns[v-1] computes the first v·vec columns of the tile
}

// tileFunc adds Σ_p src[rows[i]+cols[p]]·b[p·nr+j] to c[i·ldc+j] for
// i < MR, p < k and j below the variant's width. Callers guarantee that
// every index is in range.
type tileFunc func(k int, src []float32, rows *[MR]int32, cols []int32, b, c []float32, ldc int)

// Name is the kernel's name: "avx512", "avx2" or "go".
func (k *MicroKernel) Name() string { return k.name }

// PanelWidth is the number of columns of a packed B panel.
func (k *MicroKernel) PanelWidth() int { return k.nr }

func (k *MicroKernel) String() string { return k.name }

// tile runs the variant that covers width columns of the panel.
func (k *MicroKernel) tile(width int) tileFunc {
	return k.fns[(width+k.vec-1)/k.vec-1]
}

// goKernel is the portable kernel, used where no assembly kernel runs and
// as the reference the others are tested against.
var goKernel = &MicroKernel{name: "go", nr: 16, vec: 16, fns: []tileFunc{tileGo}}

func tileGo(k int, src []float32, rows *[MR]int32, cols []int32, b, c []float32, ldc int) {
	const nr = 16
	var acc [MR][nr]float32
	for p := 0; p < k; p++ {
		bp := b[p*nr : p*nr+nr]
		off := int(cols[p])
		for i := 0; i < MR; i++ {
			ai := src[int(rows[i])+off]
			row := &acc[i]
			for j, bv := range bp {
				row[j] += ai * bv
			}
		}
	}
	for i := 0; i < MR; i++ {
		row := c[i*ldc : i*ldc+nr]
		for j := range row {
			row[j] += acc[i][j]
		}
	}
}

// Kernels returns the kernels this CPU can run, fastest first: the first
// is the default of every function that takes a nil *MicroKernel.
func MicroKernels() []*MicroKernel { return available }

// Default returns the fastest kernel this CPU can run.
func Default() *MicroKernel { return available[0] }

// Lookup returns the kernel of the given name, if this CPU can run it.
func Lookup(name string) (*MicroKernel, error) {
	for _, k := range available {
		if k.name == name {
			return k, nil
		}
	}
	return nil, fmt.Errorf("gemm: no kernel %q on this CPU (have %v)", name, available)
}

// asmTile wraps an assembly kernel as a tileFunc.
func asmTile(f func(k int, src *float32, rows, cols *int32, b, c *float32, ldc int)) tileFunc {
	return func(k int, src []float32, rows *[MR]int32, cols []int32, b, c []float32, ldc int) {
		if k == 0 {
			return
		}
		f(k, unsafe.SliceData(src), &rows[0], unsafe.SliceData(cols), unsafe.SliceData(b), unsafe.SliceData(c), ldc)
	}
}
