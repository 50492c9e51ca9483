package em

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"unsafe"

	"calm/internal/atomicfile"

	"codeberg.org/sbinet/npyio"
	"gorgonia.org/tensor"
)

// maxThetaBytes bounds the .npy files LoadTheta reads (256 MiB: 64 million
// kernel values), so that a wrong path cannot exhaust memory.
const maxThetaBytes = 256 << 20

// LoadTheta reads kernels from a NumPy .npy file of float32 with shape
// (K,C,w,w), C-ordered and finite.
func LoadTheta(path string) (*tensor.Dense, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	if st.Size() > maxThetaBytes {
		return nil, fmt.Errorf("em: %s: %d bytes is too large for kernels", path, st.Size())
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	theta, err := ReadTheta(data)
	if err != nil {
		return nil, fmt.Errorf("em: %s: %w", path, err)
	}
	return theta, nil
}

// ReadTheta decodes kernels from the bytes of a .npy file (see LoadTheta).
// Every size in the header is checked against len(data) before anything is
// allocated with it.
func ReadTheta(data []byte) (theta *tensor.Dense, err error) {
	const magic = "\x93NUMPY"
	if len(data) < 10 || string(data[:6]) != magic {
		return nil, errors.New("not a .npy file")
	}
	var hlen, start int
	switch data[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(data[8:10])), 10
	case 2, 3:
		if len(data) < 12 {
			return nil, errors.New("truncated .npy header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(data[8:12])), 12
	default:
		return nil, fmt.Errorf(".npy format version %d", data[6])
	}
	if hlen > len(data)-start {
		return nil, fmt.Errorf(".npy header of %d bytes in a file of %d", hlen, len(data))
	}
	// npyio parses the header; guard against a panic on malformed input.
	defer func() {
		if r := recover(); r != nil {
			theta, err = nil, fmt.Errorf("malformed .npy file: %v", r)
		}
	}()
	r, err := npyio.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a .npy file: %w", err)
	}
	shape := r.Header.Descr.Shape
	if dt := strings.Trim(r.Header.Descr.Type, `'"`); dt != "<f4" {
		return nil, fmt.Errorf("dtype %s, want float32 (<f4)", dt)
	}
	if r.Header.Descr.Fortran {
		return nil, errors.New("Fortran order is not supported")
	}
	if len(shape) != 4 || shape[2] != shape[3] {
		return nil, fmt.Errorf("shape %v, want (K,C,w,w)", shape)
	}
	n := 1
	for _, d := range shape {
		if d < 1 || d > len(data) {
			return nil, fmt.Errorf("shape %v, want (K,C,w,w) of positive sizes", shape)
		}
		n *= d
		if n > len(data) {
			return nil, fmt.Errorf("shape %v needs more than the file's %d bytes", shape, len(data))
		}
	}
	if body := len(data) - start - hlen; body != 4*n {
		return nil, fmt.Errorf("shape %v needs %d data bytes, the file has %d", shape, 4*n, body)
	}
	var v []float32
	if err := r.Read(&v); err != nil {
		return nil, err
	}
	if len(v) != n {
		return nil, fmt.Errorf("%d values for shape %v", len(v), shape)
	}
	if i := nonFinite(v); i >= 0 {
		return nil, fmt.Errorf("θ holds %v in kernel %d", v[i], i/(n/shape[0]))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v)), nil
}

// SaveTheta writes float32 kernels (K,C,w,w) to path as a NumPy .npy file.
// It writes a temporary file and renames it, so path is never left
// half-written.
func SaveTheta(path string, theta *tensor.Dense) error {
	if err := saveTheta(path, theta); err != nil {
		return fmt.Errorf("em: save θ: %w", err)
	}
	return nil
}

func saveTheta(path string, theta *tensor.Dense) error {
	data, ok := theta.Data().([]float32)
	if !ok || theta.Shape().Dims() != 4 {
		return fmt.Errorf("want float32 (K,C,w,w), got %v %v", theta.Dtype(), theta.Shape())
	}
	return saveNpy(path, data, theta.Shape()...)
}

// SaveNpy writes data as a float32 .npy array of the given shape (which
// NumPy reads with numpy.load), whole or not at all.
func SaveNpy(path string, data []float32, shape ...int) error {
	if err := saveNpy(path, data, shape...); err != nil {
		return fmt.Errorf("em: %w", err)
	}
	return nil
}

func saveNpy(path string, data []float32, shape ...int) error {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) || len(shape) == 0 {
		return fmt.Errorf("%d values for shape %v", len(data), shape)
	}
	var v any = data
	if len(shape) > 1 && len(data) > 0 {
		// npyio writes the shape of nested Go arrays: view the data as a
		// slice of shape[0] arrays of the other dimensions.
		typ := reflect.TypeFor[float32]()
		for i := len(shape) - 1; i >= 1; i-- {
			typ = reflect.ArrayOf(shape[i], typ)
		}
		v = reflect.NewAt(reflect.ArrayOf(shape[0], typ), unsafe.Pointer(&data[0])).Elem().Slice(0, shape[0]).Interface()
	}
	return atomicfile.Write(path, func(w io.Writer) error { return npyio.Write(w, v) })
}
