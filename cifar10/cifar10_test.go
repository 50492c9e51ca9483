package cifar10_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calm/cifar10"
)

// pixel is the byte planted at (row, col) of channel c of record i.
func pixel(i, c, row, col int) byte { return byte(i*7 + c*50 + 3*row + col) }

// label is the class planted in record i: classes interleave, as in the
// real files.
func label(i int) byte { return byte((i*3 + 1) % cifar10.Classes) }

// records returns n records from the (offset)th on, as a batch file holds them.
func records(n, offset int) []byte {
	var b []byte
	for i := offset; i < offset+n; i++ {
		b = append(b, label(i))
		for c := 0; c < cifar10.Channels; c++ {
			for row := 0; row < cifar10.Side; row++ {
				for col := 0; col < cifar10.Side; col++ {
					b = append(b, pixel(i, c, row, col))
				}
			}
		}
	}
	return b
}

// writeDir writes a binary distribution of per training records in each
// of the five training files and test records in the test file.
func writeDir(t testing.TB, dir string, per, test int) {
	t.Helper()
	for f, name := range cifar10.TrainFiles {
		if err := os.WriteFile(filepath.Join(dir, name), records(per, f*per), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, cifar10.TestFile), records(test, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoad reads planted records back: label, channel planes, row-major
// pixels, the files' order, and the class-by-class order that keeps each
// class's records in file order.
func TestLoad(t *testing.T) {
	for _, sub := range []string{"", "cifar-10-batches-bin"} {
		t.Run("dir="+sub, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, sub)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeDir(t, dir, 4, 6)
			train, test, err := cifar10.Load(root)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name   string
				set    *cifar10.Set
				n, off int
			}{{"train", train, 20, 0}, {"test", test, 6, 1000}} {
				if n, ch, h, w := c.set.Shape(); n != c.n || ch != 3 || h != 32 || w != 32 {
					t.Fatalf("%s: shape %d×%d×%d×%d, want %d×3×32×32", c.name, n, ch, h, w, c.n)
				}
				// The expected order: records sorted by class, stably.
				var want []int
				for cl := 0; cl < cifar10.Classes; cl++ {
					for i := c.off; i < c.off+c.n; i++ {
						if int(label(i)) == cl {
							want = append(want, i)
						}
					}
				}
				got := make([]float32, c.n*cifar10.ImageSize)
				if err := c.set.Read(got, 0); err != nil {
					t.Fatal(err)
				}
				for j, i := range want {
					if c.set.Labels[j] != label(i) {
						t.Fatalf("%s: image %d has label %d, want record %d's %d", c.name, j, c.set.Labels[j], i, label(i))
					}
					for ch := 0; ch < 3; ch++ {
						for row := 0; row < 32; row++ {
							for col := 0; col < 32; col++ {
								g := got[j*cifar10.ImageSize+(ch*32+row)*32+col]
								if w := float32(pixel(i, ch, row, col)) / 255; g != w {
									t.Fatalf("%s: image %d (record %d) channel %d (%d,%d) = %v, want %v", c.name, j, i, ch, row, col, g, w)
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestErrors: every malformed input names its problem and returns no set.
func TestErrors(t *testing.T) {
	good := records(2, 0)
	badLabel := bytes.Clone(good)
	badLabel[cifar10.RecordSize] = 10
	for _, c := range []struct {
		name   string
		data   []byte
		format bool   // a *FormatError
		eof    bool   // io.ErrUnexpectedEOF
		want   string // in the message
	}{
		{name: "empty", data: nil, format: true, want: "bytes is not a whole number"},
		{name: "cut record", data: good[:len(good)-1], format: true, want: "not a whole number"},
		{name: "label 10", data: badLabel, format: true, want: "record 1: label 10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data_batch_1.bin")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := cifar10.ReadFiles(path)
			if err == nil || s != nil {
				t.Fatalf("got %v, %v; want an error", s, err)
			}
			var fe *cifar10.FormatError
			if c.format != errors.As(err, &fe) {
				t.Errorf("%v: FormatError %v, want %v", err, !c.format, c.format)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q: want %q and the path", err, c.want)
			}
		})
	}
	t.Run("stream cut short", func(t *testing.T) {
		err := new(cifar10.Set).Decode(bytes.NewReader(good[:cifar10.RecordSize+10]))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		dir := t.TempDir()
		writeDir(t, dir, 1, 1)
		if err := os.Remove(filepath.Join(dir, "data_batch_3.bin")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cifar10.Load(dir); err == nil || !strings.Contains(err.Error(), "data_batch_3.bin") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v, want the missing file named", err)
		}
	})
	t.Run("not the distribution", func(t *testing.T) {
		if _, _, err := cifar10.Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "cifar-10-batches-bin") {
			t.Errorf("got %v, want a word on what the folder must hold", err)
		}
	})
	t.Run("read out of range", func(t *testing.T) {
		s := new(cifar10.Set)
		if err := s.Decode(bytes.NewReader(good)); err != nil {
			t.Fatal(err)
		}
		if err := s.Read(make([]float32, cifar10.ImageSize), 2); err == nil {
			t.Error("a read past the last image succeeded")
		}
	})
}

// FuzzDecode: any input either decodes into whole records with valid
// labels, or fails with a FormatError or io.ErrUnexpectedEOF; never panics.
func FuzzDecode(f *testing.F) {
	f.Add(records(1, 0))
	f.Add(records(2, 5)[:cifar10.RecordSize+7])
	f.Add([]byte{10})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := new(cifar10.Set)
		err := s.Decode(bytes.NewReader(data))
		if err != nil {
			var fe *cifar10.FormatError
			if !errors.As(err, &fe) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v is neither a FormatError nor io.ErrUnexpectedEOF", err)
			}
			return
		}
		if len(s.Pix) != len(s.Labels)*cifar10.ImageSize || len(data) != len(s.Labels)*cifar10.RecordSize {
			t.Fatalf("%d labels, %d pixels from %d bytes", len(s.Labels), len(s.Pix), len(data))
		}
		for i, l := range s.Labels {
			if l >= cifar10.Classes || l != data[i*cifar10.RecordSize] {
				t.Fatalf("record %d: label %d", i, l)
			}
		}
	})
}
