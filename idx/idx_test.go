package idx_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"calm/idx"
)

// imageFile returns an IDX image file of n images rows×cols whose pixel i
// is byte(i·7).
func imageFile(magic uint32, n, rows, cols int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, []uint32{magic, uint32(n), uint32(rows), uint32(cols)})
	for i := 0; i < n*rows*cols; i++ {
		b.WriteByte(byte(i * 7))
	}
	return b.Bytes()
}

func labelFile(n int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, []uint32{0x801, uint32(n)})
	for i := 0; i < n; i++ {
		b.WriteByte(byte(i % 10))
	}
	return b.Bytes()
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadImagesFile(t *testing.T) {
	raw := imageFile(0x803, 3, 4, 5)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"plain", raw},
		{"gzipped", gz(raw)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := idx.ReadImagesFile(write(t, "images", tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if im.N != 3 || im.Rows != 4 || im.Cols != 5 || len(im.Pix) != 60 {
				t.Fatalf("got %d images %d×%d with %d pixels, want 3 of 4×5", im.N, im.Rows, im.Cols, len(im.Pix))
			}
			for i, p := range im.Pix {
				if p != byte(i*7) {
					t.Fatalf("pixel %d = %d, want %d", i, p, byte(i*7))
				}
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	raw := imageFile(0x803, 3, 4, 5)
	gzRaw := gz(raw)
	type readCase struct {
		name   string
		data   []byte
		labels bool
		want   error // errors.Is target, or nil for a *FormatError
	}
	cases := []readCase{
		{name: "truncated data", data: raw[:len(raw)-1], want: io.ErrUnexpectedEOF},
		{name: "truncated header", data: raw[:10], want: io.ErrUnexpectedEOF},
		{name: "empty", data: nil, want: io.ErrUnexpectedEOF},
		{name: "truncated gzip", data: gzRaw[:len(gzRaw)-12], want: io.ErrUnexpectedEOF},
		{name: "wrong magic", data: imageFile(0x804, 3, 4, 5)},
		{name: "labels for images", data: labelFile(3)},
		{name: "images for labels", data: raw, labels: true},
		{name: "trailing bytes", data: append(raw[:len(raw):len(raw)], 1, 2)},
		{name: "zero images", data: imageFile(0x803, 0, 4, 5)},
		{name: "zero rows", data: imageFile(0x803, 3, 0, 5)},
		// A header claiming 10⁹ images of 28×28 must be refused before any
		// allocation, and one claiming 10⁶ must cost only what the file holds.
		{name: "magic only", data: imageFile(0x803, 0, 28, 28)[:4], want: io.ErrUnexpectedEOF},
	}
	huge := imageFile(0x803, 0, 28, 28)
	binary.BigEndian.PutUint32(huge[4:], 1_000_000_000)
	cases = append(cases, readCase{name: "header claims 10^9 images", data: huge})
	many := imageFile(0x803, 0, 28, 28)
	binary.BigEndian.PutUint32(many[4:], 1_000_000)
	cases = append(cases, readCase{name: "header claims 10^6 images, file holds none", data: many, want: io.ErrUnexpectedEOF})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, "f", tc.data)
			var err error
			if tc.labels {
				_, err = idx.ReadLabelsFile(p)
			} else {
				_, err = idx.ReadImagesFile(p)
			}
			if err == nil {
				t.Fatal("no error")
			}
			var fe idx.FormatError
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q, want %v", err, tc.want)
			} else if tc.want == nil && !errors.As(err, &fe) {
				t.Errorf("error %q, want an idx.FormatError", err)
			}
		})
	}
}

func TestReadLabelsFile(t *testing.T) {
	l, err := idx.ReadLabelsFile(write(t, "labels.gz", gz(labelFile(25))))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range l {
		if v != byte(i%10) {
			t.Fatalf("label %d = %d, want %d", i, v, i%10)
		}
	}
	if len(l) != 25 {
		t.Fatalf("%d labels, want 25", len(l))
	}
}

func TestOpenMissing(t *testing.T) {
	if _, err := idx.ReadImagesFile(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want os.ErrNotExist", err)
	}
}
