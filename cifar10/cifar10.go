package cifar10

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// The CIFAR-10 record format.
const (
	Side       = 32
	Channels   = 3
	ImageSize  = Channels * Side * Side // pixel bytes of one image
	RecordSize = 1 + ImageSize          // a label byte, then the pixels
	Classes    = 10
	// MaxRecords caps the records one file may hold (a real batch file
	// holds 10 000): far above the data set, far below exhausting memory.
	MaxRecords = 1 << 20
)

// TrainFiles and TestFile are the files of the binary distribution.
var (
	TrainFiles = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	TestFile   = "test_batch.bin"
)

// ClassNames are the classes in label order (batches.meta.txt).
var ClassNames = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// FormatError reports malformed CIFAR-10 data.
type FormatError struct {
	Record int    // the record at fault, 0-based; −1 for the file as a whole
	Msg    string // what is wrong
}

func (e *FormatError) Error() string {
	if e.Record < 0 {
		return "cifar10: invalid format: " + e.Msg
	}
	return fmt.Sprintf("cifar10: invalid format: record %d: %s", e.Record, e.Msg)
}

// A Set is a split of CIFAR-10: labels and pixel bytes, image i's
// 3 072 bytes at Pix[i·ImageSize:]. It implements dataset.Source, giving each
// image as float32 (3,32,32) in [0, 1].
type Set struct {
	Labels []byte
	Pix    []byte
}

// Len returns the number of images.
func (s *Set) Len() int { return len(s.Labels) }

// Shape implements dataset.Source.
func (s *Set) Shape() (n, c, h, w int) { return len(s.Labels), Channels, Side, Side }

// Read implements dataset.Source: images [start, start+len(dst)/ImageSize), each
// value a byte over 255.
func (s *Set) Read(dst []float32, start int) error {
	k := len(dst) / ImageSize
	if len(dst)%ImageSize != 0 || start < 0 || start+k > s.Len() {
		return fmt.Errorf("cifar10: read of %d values at image %d of %d: out of range", len(dst), start, s.Len())
	}
	for i, v := range s.Pix[start*ImageSize : (start+k)*ImageSize] {
		dst[i] = float32(v) / 255
	}
	return nil
}

// Decode reads records from r until it ends, appending them to s. It
// reads at most MaxRecords records, and does not close r.
func (s *Set) Decode(r io.Reader) error {
	var rec [RecordSize]byte
	for n := 0; ; n++ {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			switch {
			case errors.Is(err, io.EOF) && n == 0:
				return &FormatError{Record: -1, Msg: "no records"}
			case errors.Is(err, io.EOF):
				return nil
			}
			return fmt.Errorf("cifar10: record %d: %w", n, err) // io.ErrUnexpectedEOF for a cut record
		}
		if n == MaxRecords {
			return &FormatError{Record: -1, Msg: fmt.Sprintf("more than %d records", MaxRecords)}
		}
		if rec[0] >= Classes {
			return &FormatError{Record: n, Msg: fmt.Sprintf("label %d: want 0 to %d", rec[0], Classes-1)}
		}
		s.Labels = append(s.Labels, rec[0])
		s.Pix = append(s.Pix, rec[1:]...)
	}
}

// ReadFiles reads the files in turn into one set, checking each file's
// size before reading it; errors name the file.
func ReadFiles(paths ...string) (*Set, error) {
	s := new(Set)
	for _, path := range paths {
		if err := s.readFile(path); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Set) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cifar10: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cifar10: %w", err)
	}
	size := st.Size()
	if size == 0 || size%RecordSize != 0 || size/RecordSize > MaxRecords {
		return fmt.Errorf("cifar10: %s: %w", path, &FormatError{Record: -1, Msg: fmt.Sprintf("%d bytes is not a whole number (1 to %d) of %d-byte records", size, MaxRecords, RecordSize)})
	}
	n := int(size / RecordSize)
	s.Labels = slices.Grow(s.Labels, n)
	s.Pix = slices.Grow(s.Pix, n*ImageSize)
	if err := s.Decode(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ByClass reorders s class by class (class 0's images first), keeping
// their order within a class.
func (s *Set) ByClass() {
	order := make([]int, s.Len())
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(s.Labels[a]) - int(s.Labels[b]) })
	labels := make([]byte, len(s.Labels))
	pix := make([]byte, len(s.Pix))
	for to, from := range order {
		labels[to] = s.Labels[from]
		copy(pix[to*ImageSize:(to+1)*ImageSize], s.Pix[from*ImageSize:])
	}
	s.Labels, s.Pix = labels, pix
}

// IsDir reports whether dir holds the binary distribution, directly or in
// a cifar-10-batches-bin subfolder, and returns the folder that does.
func IsDir(dir string) (string, bool) {
	for _, d := range []string{dir, filepath.Join(dir, "cifar-10-batches-bin")} {
		if _, err := os.Stat(filepath.Join(d, TestFile)); err == nil {
			return d, true
		}
	}
	return "", false
}

// Load reads the binary distribution in dir (or dir/cifar-10-batches-bin):
// the five training files and the test file, each split ordered class by
// class (ByClass).
func Load(dir string) (train, test *Set, err error) {
	d, ok := IsDir(dir)
	if !ok {
		return nil, nil, fmt.Errorf("cifar10: %s holds no %s (nor does %s): want the cifar-10-batches-bin folder", dir, TestFile, filepath.Join(dir, "cifar-10-batches-bin"))
	}
	paths := make([]string, len(TrainFiles))
	for i, name := range TrainFiles {
		paths[i] = filepath.Join(d, name)
	}
	if train, err = ReadFiles(paths...); err != nil {
		return nil, nil, err
	}
	if test, err = ReadFiles(filepath.Join(d, TestFile)); err != nil {
		return nil, nil, err
	}
	train.ByClass()
	test.ByClass()
	return train, test, nil
}
