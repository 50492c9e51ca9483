package em

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

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
		return nil, errors.New("a column-major (Fortran order) array: want row-major")
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
	return atomicfile.Write(path, func(w io.Writer) error {
		if _, err := w.Write(npyHeader(shape)); err != nil {
			return err
		}
		return writeFloat32s(w, data)
	})
}

// npyHeader returns the header of a version 1.0 .npy file of C-ordered
// little-endian float32 of the shape: magic, version, length, then a Python
// dict padded with spaces and a newline so that the data start on a
// multiple of 64 bytes. (npyio's writer converts value by value through
// reflection, at a few MB/s: too slow for the feature files.)
func npyHeader(shape []int) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	const prefix = 10 // magic (6), version (2), header length (2)
	total := (prefix + len(dict) + 1 + 63) / 64 * 64
	h := make([]byte, 0, total)
	h = append(h, "\x93NUMPY\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(total-prefix))
	h = append(h, dict...)
	for len(h) < total-1 {
		h = append(h, ' ')
	}
	return append(h, '\n')
}

// writeFloat32s writes v little-endian, a block at a time.
func writeFloat32s(w io.Writer, v []float32) error {
	buf := make([]byte, 0, 1<<20)
	for len(v) > 0 {
		m := min(len(v), cap(buf)/4)
		buf = buf[:0]
		for _, x := range v[:m] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		v = v[m:]
	}
	return nil
}
