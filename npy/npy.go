package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// MaxHeader bounds the header Decode reads (NumPy writes a few hundred
// bytes at most).
const MaxHeader = 1 << 16

const magic = "\x93NUMPY"

// A FormatError reports malformed .npy data.
type FormatError string

func (e FormatError) Error() string { return "npy: invalid format: " + string(e) }

// An UnsupportedError reports a valid .npy array this package does not
// read.
type UnsupportedError string

func (e UnsupportedError) Error() string { return "npy: unsupported: " + string(e) }

// Encode writes data as a version 1.0 .npy array of the given shape: the
// header, then the values little-endian. It does not close w.
func Encode(w io.Writer, data []float32, shape ...int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: shape %v", shape)
		}
		n *= d
	}
	if n != len(data) || len(shape) == 0 {
		return fmt.Errorf("npy: %d values for shape %v", len(data), shape)
	}
	if _, err := w.Write(header(shape)); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<20)
	for len(data) > 0 {
		m := min(len(data), cap(buf)/4)
		buf = buf[:0]
		for _, x := range data[:m] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		data = data[m:]
	}
	return nil
}

// header returns the header of a version 1.0 .npy file of C-ordered
// little-endian float32 of the shape: magic, version, length, then a Python
// dict padded with spaces and a newline so that the data start on a
// multiple of 64 bytes.
func header(shape []int) []byte {
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
	h = append(h, magic+"\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(total-prefix))
	h = append(h, dict...)
	for len(h) < total-1 {
		h = append(h, ' ')
	}
	return append(h, '\n')
}

// Decode reads one .npy array of at most maxValues float32 values from r
// and returns its values and shape. It reads no further than the array's
// end and does not close r.
func Decode(r io.Reader, maxValues int) (data []float32, shape []int, err error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, nil, eof(err, "no .npy header")
	}
	if string(pre[:6]) != magic {
		return nil, nil, FormatError("not a .npy file")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, nil, eof(err, "")
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, nil, eof(err, "")
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, nil, UnsupportedError(fmt.Sprintf("format version %d.%d", pre[6], pre[7]))
	}
	if hlen > MaxHeader {
		return nil, nil, FormatError(fmt.Sprintf("a header of %d bytes", hlen))
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, nil, eof(err, "")
	}
	shape, err = parseHeader(string(h))
	if err != nil {
		return nil, nil, err
	}
	n := 1
	for _, d := range shape {
		if d > 0 && n > maxValues/d {
			return nil, nil, FormatError(fmt.Sprintf("shape %v holds more than %d values", shape, maxValues))
		}
		n *= d
	}
	if n > maxValues {
		return nil, nil, FormatError(fmt.Sprintf("shape %v holds more than %d values", shape, maxValues))
	}
	data = make([]float32, n)
	br := bufio.NewReaderSize(io.LimitReader(r, 4*int64(n)), 1<<16)
	var b [4]byte
	for i := range data {
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, nil, eof(err, "")
		}
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[:]))
	}
	return data, shape, nil
}

// eof maps an end of input inside the file to io.ErrUnexpectedEOF.
func eof(err error, empty string) error {
	if errors.Is(err, io.EOF) {
		if empty != "" {
			return FormatError(empty)
		}
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseHeader reads the Python dict of a header: 'descr' must be '<f4',
// 'fortran_order' False, 'shape' a tuple of sizes.
func parseHeader(h string) ([]int, error) {
	h = strings.TrimSpace(h)
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return nil, FormatError(fmt.Sprintf("header %q is not a dict", h))
	}
	body := h[1 : len(h)-1]
	var descr, fortran, shapeText string
	var seen int
	for body = strings.TrimSpace(body); body != ""; body = strings.TrimSpace(body) {
		key, rest, ok := strings.Cut(body, ":")
		if !ok {
			return nil, FormatError(fmt.Sprintf("header %q", h))
		}
		key = strings.Trim(strings.TrimSpace(key), `'"`)
		rest = strings.TrimSpace(rest)
		var value string
		if strings.HasPrefix(rest, "(") {
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				return nil, FormatError(fmt.Sprintf("header %q: an open tuple", h))
			}
			value, rest = rest[:end+1], rest[end+1:]
		} else if i := strings.IndexByte(rest, ','); i >= 0 {
			value, rest = rest[:i], rest[i:]
		} else {
			value, rest = rest, ""
		}
		rest = strings.TrimSpace(rest)
		rest = strings.TrimPrefix(rest, ",")
		switch key {
		case "descr":
			descr = strings.Trim(strings.TrimSpace(value), `'"`)
		case "fortran_order":
			fortran = strings.TrimSpace(value)
		case "shape":
			shapeText = value
		default:
			return nil, FormatError(fmt.Sprintf("header key %q", key))
		}
		seen++
		body = rest
	}
	if seen != 3 || descr == "" || fortran == "" || shapeText == "" {
		return nil, FormatError(fmt.Sprintf("header %q: want descr, fortran_order and shape", h))
	}
	if descr != "<f4" {
		return nil, UnsupportedError(fmt.Sprintf("dtype %s: want float32 (<f4)", descr))
	}
	switch fortran {
	case "False":
	case "True":
		return nil, UnsupportedError("a column-major (Fortran order) array: want row-major")
	default:
		return nil, FormatError(fmt.Sprintf("fortran_order %q", fortran))
	}
	inner := strings.TrimSpace(shapeText[1 : len(shapeText)-1])
	var shape []int
	items := strings.Split(inner, ",")
	if len(items) > 1 && strings.TrimSpace(items[len(items)-1]) == "" {
		items = items[:len(items)-1] // (3,): a tuple of one
	}
	for _, f := range items {
		f = strings.TrimSpace(f)
		if f == "" && len(items) == 1 {
			break // (): a scalar
		}
		d, err := strconv.Atoi(f)
		if err != nil || d < 0 {
			return nil, FormatError(fmt.Sprintf("shape %s", shapeText))
		}
		shape = append(shape, d)
	}
	return shape, nil
}
