package em

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"

	"calm/internal/atomicfile"
	"calm/npy"

	"gorgonia.org/tensor"
)

// maxThetaBytes bounds the .npy files LoadTheta reads (256 MiB: 64 million
// kernel values), so that a wrong path cannot exhaust memory.
const maxThetaBytes = 256 << 20

// LoadTheta reads kernels from a NumPy .npy file of float32 with shape
// (K,C,w,w), C-ordered and finite.
func LoadTheta(path string) (*tensor.Dense, error) {
	theta, err := loadTheta(path)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	return theta, nil
}

// loadTheta is LoadTheta, its errors naming the file but not the package.
func loadTheta(path string) (*tensor.Dense, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxThetaBytes {
		return nil, fmt.Errorf("%s: %d bytes is too large for kernels", path, st.Size())
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	theta, err := ReadTheta(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return theta, nil
}

// ReadTheta decodes kernels from the bytes of a .npy file (see LoadTheta).
// Every size in the header is checked against len(data) before anything is
// allocated with it (package npy).
func ReadTheta(data []byte) (*tensor.Dense, error) {
	v, shape, err := npy.Decode(bytes.NewReader(data), len(data)/4)
	if err != nil {
		return nil, err
	}
	if len(shape) != 4 || shape[2] != shape[3] || slices.Contains(shape, 0) {
		return nil, fmt.Errorf("shape %v, want (K,C,w,w) of positive sizes", shape)
	}
	if i := nonFinite(v); i >= 0 {
		return nil, fmt.Errorf("θ holds %v in kernel %d", v[i], i/(len(v)/shape[0]))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v)), nil
}

// saveTheta writes float32 kernels (K,C,w,w) to path as a NumPy .npy
// file, whole or not at all.
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
	return atomicfile.Write(path, func(w io.Writer) error { return npy.Encode(w, data, shape...) })
}
