package npy_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/npy"
)

// TestRoundTrip encodes fresh random arrays of several shapes and decodes
// them back, value for value and shape for shape; the data start on a
// multiple of 64 bytes, as NumPy writes them.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][]int{{1}, {7}, {3, 5}, {2, 3, 4, 4}, {0, 4}, {1000, 3}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		want := make([]float32, n)
		for i := range want {
			want[i] = float32(rng.NormFloat64())
		}
		var buf bytes.Buffer
		if err := npy.Encode(&buf, want, shape...); err != nil {
			t.Fatal(err)
		}
		if head := buf.Len() - 4*n; head%64 != 0 {
			t.Errorf("shape %v: the data start at byte %d", shape, head)
		}
		got, gotShape, err := npy.Decode(&buf, 1<<20)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if !slices.Equal(got, want) || !slices.Equal(gotShape, shape) {
			t.Errorf("shape %v: got %v values of shape %v", shape, len(got), gotShape)
		}
	}
	if err := npy.Encode(io.Discard, make([]float32, 5), 2, 3); err == nil {
		t.Error("5 values for shape (2, 3) encoded")
	}
}

// file returns a .npy file of the given version and header dict, and data.
func file(version byte, dict string, data ...float32) []byte {
	b := []byte("\x93NUMPY")
	b = append(b, version, 0)
	if version == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	b = append(b, dict...)
	for _, v := range data {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// TestDecode reads headers as NumPy and others write them, and refuses,
// with the error of its kind, what is malformed or unsupported.
func TestDecode(t *testing.T) {
	for _, c := range []struct {
		name   string
		data   []byte
		shape  []int
		format bool // a FormatError
		unsup  bool // an UnsupportedError
		eof    bool // io.ErrUnexpectedEOF
	}{
		{name: "version 2, keys reordered, double quotes", data: file(2, `{"shape": (2, 1), "fortran_order": False, "descr": "<f4"}`+"\n", 1, 2), shape: []int{2, 1}},
		{name: "version 3", data: file(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 1, 2, 3), shape: []int{3}},
		{name: "scalar", data: file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4), shape: nil},
		{name: "not npy", data: []byte("PK\x03\x04 a zip file"), format: true},
		{name: "empty", data: nil, format: true},
		{name: "header cut", data: file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }")[:20], eof: true},
		{name: "data cut", data: file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 1), eof: true},
		{name: "float64", data: file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 1, 2), unsup: true},
		{name: "fortran", data: file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }", 1), unsup: true},
		{name: "version 9", data: file(1, "")[:6:6], format: true},
		{name: "too many values", data: file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"), format: true},
		{name: "overflowing shape", data: file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"), format: true},
		{name: "negative size", data: file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), format: true},
		{name: "unknown key", data: file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 1), format: true},
		{name: "missing shape", data: file(1, "{'descr': '<f4', 'fortran_order': False}", 1), format: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := c.data
			if c.name == "version 9" {
				data = append(append([]byte(nil), data...), 9, 0, 0, 0)
				c.format, c.unsup = false, true
			}
			got, shape, err := npy.Decode(bytes.NewReader(data), 1<<20)
			var fe npy.FormatError
			var ue npy.UnsupportedError
			switch {
			case c.format && !errors.As(err, &fe):
				t.Errorf("got %v, want a FormatError", err)
			case c.unsup && !errors.As(err, &ue):
				t.Errorf("got %v, want an UnsupportedError", err)
			case c.eof && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
			case !c.format && !c.unsup && !c.eof && (err != nil || !slices.Equal(shape, c.shape) || len(got) != max(1, product(shape))):
				t.Errorf("got %d values of shape %v, %v; want shape %v", len(got), shape, err, c.shape)
			}
		})
	}
}

func product(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// FuzzDecode: any bytes decode into as many values as their shape holds,
// no more than the cap and the bytes given allow, or fail with an error of
// the package's kinds; never a panic.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := npy.Encode(&buf, []float32{1, 2, 3, 4, 5, 6}, 2, 3); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()-2])
	f.Add(file(2, `{"shape": (2, 1), "fortran_order": False, "descr": "<f4"}`, 1, 2))
	f.Add(file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1, 2, 2), }"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		got, shape, err := npy.Decode(bytes.NewReader(data), limit)
		if err != nil {
			var fe npy.FormatError
			var ue npy.UnsupportedError
			if !errors.As(err, &fe) && !errors.As(err, &ue) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v of no kind", err)
			}
			return
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if len(got) != n || n > limit || 4*n > len(data) {
			t.Fatalf("%d values of shape %v from %d bytes", len(got), shape, len(data))
		}
	})
}
