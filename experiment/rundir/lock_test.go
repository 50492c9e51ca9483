package rundir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLockRace plays the race a lock file invites: run B opens the lock
// file while run A holds it, A finishes (removing the file), run C locks
// a fresh file at the same path. When B then takes the lock on the file it
// opened, it must find that file gone instead of holding the directory
// beside C.
func TestLockRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".lock")
	unlockA, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	unlockA()
	unlockC, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockC()
	held, err := acquire(b, path)
	if held || err != nil {
		t.Errorf("B locked a removed lock file (held %v, error %v) while C holds the directory", held, err)
	}
	// B tries again, as Lock does, and finds C's lock.
	b2, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if held, err := acquire(b2, path); held || !errors.Is(err, ErrBusy) {
		t.Errorf("B's second try: held %v, error %v; want ErrBusy", held, err)
	}
}
