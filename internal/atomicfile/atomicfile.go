// Package atomicfile writes files so that a reader never sees one
// half-written and a crash never loses the old one: the data goes to a
// temporary file in the same directory, which is synced to disk and renamed
// over the destination only when everything succeeded; the directory is
// synced after the rename, so that the rename itself survives a power
// loss. New files get mode 0666 less the umask, as os.Create gives.
package atomicfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// Write writes path through write. On any error the destination is left as
// it was and the temporary file is removed.
func Write(path string, write func(io.Writer) error) error {
	return writeFS(osFS{}, path, write)
}

// WriteJSON writes v to path atomically as indented JSON and a final
// newline.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteBytes(path, append(b, '\n'))
}

// WriteBytes writes data to path atomically.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// fsys is what writeFS needs of a file system; tests substitute one that
// records the calls.
type fsys interface {
	create(name string) (file, error) // exclusive, mode 0666 less the umask
	rename(from, to string) error
	remove(name string) error
	syncDir(dir string) error
}

type file interface {
	io.Writer
	Sync() error
	Close() error
}

func writeFS(fs fsys, path string, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var (
		f   file
		tmp string
		err error
	)
	for range 100 {
		tmp = filepath.Join(dir, "."+base+".tmp"+strconv.FormatUint(rand.Uint64(), 36))
		if f, err = fs.create(tmp); !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fail := func(err error) error {
		f.Close()
		fs.remove(tmp)
		// The temporary file's name means nothing to the reader.
		if pe := (*os.PathError)(nil); errors.As(err, &pe) && pe.Path == tmp {
			err = pe.Err
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := write(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		fs.remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fs.rename(tmp, path); err != nil {
		fs.remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fs.syncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

type osFS struct{}

func (osFS) create(name string) (file, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
}
func (osFS) rename(from, to string) error { return os.Rename(from, to) }
func (osFS) remove(name string) error     { return os.Remove(name) }
func (osFS) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
