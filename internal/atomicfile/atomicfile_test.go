package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := WriteBytes(p, []byte("first")); err != nil {
		t.Fatal(err)
	}
	// A failing writer must leave the old file whole and no temporary file.
	boom := errors.New("boom")
	err := Write(p, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "first" {
		t.Errorf("after a failed write the file holds %q, want %q", b, "first")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1 (no temporary left)", len(entries))
	}
	if err := WriteBytes(p, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "second" {
		t.Errorf("file holds %q, want %q", b, "second")
	}
	if err := WriteBytes(filepath.Join(dir, "no", "such", "dir"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestMode writes a file under two umasks: its mode must be 0666 less the
// umask, as os.Create would give, not the 0600 of a temporary file.
func TestMode(t *testing.T) {
	dir := t.TempDir()
	for _, mask := range []int{0o022, 0o077} {
		old := syscall.Umask(mask)
		p := filepath.Join(dir, "m")
		err := WriteBytes(p, []byte("x"))
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := fs.FileMode(0o666 &^ mask); st.Mode().Perm() != want {
			t.Errorf("umask %o: mode %o, want %o", mask, st.Mode().Perm(), want)
		}
	}
}

// recorder is a file system that logs every call, on top of the real one.
type recorder struct {
	osFS
	log []string
}

type recFile struct {
	*os.File
	r *recorder
}

func (r *recorder) create(name string) (file, error) {
	f, err := r.osFS.create(name)
	r.log = append(r.log, "create")
	if err != nil {
		return nil, err
	}
	return recFile{f.(*os.File), r}, nil
}
func (f recFile) Write(b []byte) (int, error) {
	f.r.log = append(f.r.log, "write")
	return f.File.Write(b)
}
func (f recFile) Sync() error  { f.r.log = append(f.r.log, "sync"); return f.File.Sync() }
func (f recFile) Close() error { f.r.log = append(f.r.log, "close"); return f.File.Close() }
func (r *recorder) rename(a, b string) error {
	r.log = append(r.log, "rename")
	return r.osFS.rename(a, b)
}
func (r *recorder) syncDir(d string) error {
	r.log = append(r.log, "syncdir")
	return r.osFS.syncDir(d)
}

// TestDurable checks the order that makes a write survive a power loss:
// the data is synced before the rename, and the directory after it.
func TestDurable(t *testing.T) {
	r := &recorder{}
	p := filepath.Join(t.TempDir(), "d")
	if err := writeFS(r, p, func(w io.Writer) error { _, err := w.Write([]byte("data")); return err }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"create", "write", "sync", "close", "rename", "syncdir"}; !slices.Equal(r.log, want) {
		t.Errorf("calls %v, want %v", r.log, want)
	}
}

// TestFileTooLarge writes past a file-size limit in a child process: the
// error must say so and the old file must be whole.
func TestFileTooLarge(t *testing.T) {
	if os.Getenv("ATOMICFILE_CHILD") != "" {
		// In the child: the limit is 4 KiB, the write 64 KiB.
		syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4096, Max: 4096})
		err := WriteBytes(os.Getenv("ATOMICFILE_CHILD"), make([]byte, 1<<16))
		if err == nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(err.Error())
		os.Exit(0)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "big")
	if err := WriteBytes(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := osexec(exe, "-test.run=TestFileTooLarge$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_CHILD="+p)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v (%s)", err, out)
	}
	if !strings.Contains(string(out), "file too large") {
		t.Errorf("error %q, want one that says the file is too large", out)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("the old file holds %q after the failed write", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left, want the old one only", len(entries))
	}
}
