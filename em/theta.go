package em

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"unsafe"

	"calm/internal/atomicfile"

	"codeberg.org/sbinet/npyio"
	"gorgonia.org/tensor"
)

// InitTheta returns K kernels (c,w,w) drawn from N(0,1) with the given seed,
// as the reference draws its initial θ (the generators differ, so the draws
// do not match PyTorch's; start from a saved θ to compare runs).
func InitTheta(k, c, w int, seed uint64) *tensor.Dense {
	rng := rand.New(rand.NewPCG(seed, 0x63616c6d)) // "calm"
	v := make([]float32, k*c*w*w)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensor.New(tensor.WithShape(k, c, w, w), tensor.WithBacking(v))
}

// LoadTheta reads kernels from a NumPy .npy file of float32 with shape
// (K,C,w,w).
func LoadTheta(path string) (*tensor.Dense, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	defer f.Close()
	r, err := npyio.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("em: %s: not a .npy file: %w", path, err)
	}
	shape := r.Header.Descr.Shape
	if dt := strings.Trim(r.Header.Descr.Type, `'"`); dt != "<f4" {
		return nil, fmt.Errorf("em: %s: dtype %s, want float32 (<f4)", path, dt)
	}
	if r.Header.Descr.Fortran {
		return nil, fmt.Errorf("em: %s: Fortran order is not supported", path)
	}
	if len(shape) != 4 || shape[2] != shape[3] || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 {
		return nil, fmt.Errorf("em: %s: shape %v, want (K,C,w,w)", path, shape)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	// A header may claim any shape: check it against the file's size before
	// allocating for it.
	n := shape[0] * shape[1] * shape[2] * shape[3]
	if n <= 0 || int64(n)*4 > st.Size() {
		return nil, fmt.Errorf("em: %s: shape %v needs %d bytes, the file has %d", path, shape, int64(n)*4, st.Size())
	}
	var v []float32
	if err := r.Read(&v); err != nil {
		return nil, fmt.Errorf("em: %s: %w", path, err)
	}
	if len(v) != n {
		return nil, fmt.Errorf("em: %s: %d values for shape %v", path, len(v), shape)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v)), nil
}

// SaveTheta writes float32 kernels (K,C,w,w) to path as a NumPy .npy file.
// It writes a temporary file and renames it, so path is never left
// half-written.
func SaveTheta(path string, theta *tensor.Dense) error {
	data, ok := theta.Data().([]float32)
	if !ok || theta.Shape().Dims() != 4 {
		return fmt.Errorf("em: save θ: want float32 (K,C,w,w), got %v %v", theta.Dtype(), theta.Shape())
	}
	s := theta.Shape()
	// npyio writes the shape of nested Go arrays: build [C][w][w]float32 and
	// view the data as a slice of K of them.
	typ := reflect.ArrayOf(s[1], reflect.ArrayOf(s[2], reflect.ArrayOf(s[3], reflect.TypeFor[float32]())))
	arr := reflect.NewAt(reflect.ArrayOf(s[0], typ), unsafe.Pointer(&data[0])).Elem().Slice(0, s[0])
	if err := atomicfile.Write(path, func(w io.Writer) error { return npyio.Write(w, arr.Interface()) }); err != nil {
		return fmt.Errorf("em: save θ: %w", err)
	}
	return nil
}
