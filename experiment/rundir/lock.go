package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrBusy is wrapped by the error of a run whose output directory another
// run is using.
var ErrBusy = errors.New("output directory in use")

// Lock takes an exclusive lock on dir (an flock on dir/.lock, which
// holds the owner's process id), so that two runs never write into one
// directory at once. The lock goes with the process: unlock releases it,
// and so does a crash.
func Lock(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, ".lock")
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, fmt.Errorf("rundir: lock %s: %w", dir, err)
		}
		held, err := acquire(f, path)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("rundir: %w", err)
		}
		if !held {
			// The run before removed the file as we opened it: lock the
			// file now at path instead.
			f.Close()
			continue
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("rundir: lock %s: %w", dir, err)
		}
		if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("rundir: lock %s: %w", dir, err)
		}
		// The file goes while the lock is still held; whoever opened it
		// before then finds it removed once they lock it (acquire).
		return func() {
			os.Remove(path)
			f.Close()
		}, nil
	}
}

// acquire takes the flock of f, opened at path, without waiting: an error
// wrapping ErrBusy, naming the owner, if another run holds it; false if
// the file was removed from path before the lock was taken (a lock on it
// would guard nothing).
func acquire(f *os.File, path string) (bool, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner := "another run"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				owner = fmt.Sprintf("the run of process %d", pid)
			}
		}
		return false, fmt.Errorf("%w: %s is being written by %s", ErrBusy, filepath.Dir(path), owner)
	}
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || err == nil && !os.SameFile(held, now) {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false, nil
	}
	return err == nil, err
}
