package idx

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	imageMagic = 0x00000803
	labelMagic = 0x00000801
	// maxValues caps what a header may claim (2³¹ bytes): far above any IDX
	// data set and far below what would exhaust memory.
	maxValues = 1 << 31
)

// FormatError reports malformed IDX data.
type FormatError string

func (e FormatError) Error() string { return "idx: invalid format: " + string(e) }

// Images is a set of N grey images of Rows×Cols bytes, row-major.
type Images struct {
	N, Rows, Cols int
	Pix           []byte // N·Rows·Cols values
}

// Config is the header of an IDX file.
type Config struct {
	Labels     bool // a label file (1-D), not an image file
	N          int
	Rows, Cols int // 0 for a label file
}

// ReadConfig reads only the header of an IDX file from r.
func ReadConfig(r io.Reader) (Config, error) {
	var hdr [4]uint32
	if err := binary.Read(r, binary.BigEndian, hdr[:2]); err != nil {
		return Config{}, eof(err)
	}
	var c Config
	switch hdr[0] {
	case labelMagic:
		c.Labels = true
	case imageMagic:
		if err := binary.Read(r, binary.BigEndian, hdr[2:]); err != nil {
			return Config{}, eof(err)
		}
		c.Rows, c.Cols = int(hdr[2]), int(hdr[3])
		if c.Rows < 1 || c.Cols < 1 || c.Rows > 1<<16 || c.Cols > 1<<16 {
			return Config{}, FormatError(fmt.Sprintf("image size %d×%d", c.Rows, c.Cols))
		}
	default:
		return Config{}, FormatError(fmt.Sprintf("magic number %#08x, want %#08x (images) or %#08x (labels)", hdr[0], imageMagic, labelMagic))
	}
	c.N = int(hdr[1])
	if c.N < 1 || c.N > maxValues/max(1, c.Rows*c.Cols) {
		return Config{}, FormatError(fmt.Sprintf("count %d", c.N))
	}
	return c, nil
}

// eof maps a stream that ends inside a record to io.ErrUnexpectedEOF.
func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readBody reads exactly n bytes. It grows its buffer as data arrives, so a
// header claiming more than the file holds costs no more than the file.
func readBody(r io.Reader, n int) ([]byte, error) {
	var buf bytes.Buffer
	got, err := io.Copy(&buf, io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, err
	}
	if got < int64(n) {
		return nil, fmt.Errorf("idx: %d of %d data bytes: %w", got, n, io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}

// ReadImages reads an image file.
func ReadImages(r io.Reader) (*Images, error) {
	c, err := ReadConfig(r)
	if err != nil {
		return nil, err
	}
	if c.Labels {
		return nil, FormatError("a label file where images were expected")
	}
	pix, err := readBody(r, c.N*c.Rows*c.Cols)
	if err != nil {
		return nil, err
	}
	return &Images{N: c.N, Rows: c.Rows, Cols: c.Cols, Pix: pix}, nil
}

// ReadLabels reads a label file.
func ReadLabels(r io.Reader) ([]byte, error) {
	c, err := ReadConfig(r)
	if err != nil {
		return nil, err
	}
	if !c.Labels {
		return nil, FormatError("an image file where labels were expected")
	}
	return readBody(r, c.N)
}

// Open opens an IDX file, gzipped (detected by its magic bytes) or not.
// The caller closes the returned reader.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(f)
	head, err := br.Peek(2)
	if err == nil && head[0] == 0x1f && head[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("idx: %s: %w", path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{z, f}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, f}, nil
}

// ReadImagesFile reads an image file, gzipped or not, and checks that
// nothing follows the data (which also verifies a gzip checksum).
func ReadImagesFile(path string) (*Images, error) {
	var im *Images
	err := readFile(path, func(r io.Reader) (err error) {
		im, err = ReadImages(r)
		return err
	})
	return im, err
}

// ReadLabelsFile reads a label file, gzipped or not, like ReadImagesFile.
func ReadLabelsFile(path string) ([]byte, error) {
	var l []byte
	err := readFile(path, func(r io.Reader) (err error) {
		l, err = ReadLabels(r)
		return err
	})
	return l, err
}

func readFile(path string, read func(io.Reader) error) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := read(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch n, err := io.Copy(io.Discard, f); {
	case err != nil:
		return fmt.Errorf("idx: %s: %w", path, err)
	case n > 0:
		return fmt.Errorf("%s: %w", path, FormatError(fmt.Sprintf("%d bytes after the data", n)))
	}
	return nil
}
