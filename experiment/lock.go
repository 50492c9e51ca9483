package experiment

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

// lockDir takes an exclusive lock on dir (an flock on dir/.lock, which
// holds the owner's process id), so that two runs never write into one
// directory at once. The lock goes with the process: unlock releases it,
// and so does a crash.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("experiment: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner := "another run"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				owner = fmt.Sprintf("the run of process %d", pid)
			}
		}
		f.Close()
		return nil, fmt.Errorf("experiment: %w: %s is being written by %s", ErrBusy, dir, owner)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}
