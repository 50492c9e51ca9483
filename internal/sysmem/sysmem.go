// Package sysmem says how much more memory this process may use: the
// least of what its address-space limit, its cgroup's memory limit and the
// system's available memory leave, so that a run can refuse a batch that
// cannot fit before it dies of "out of memory"; and how much it used at
// most.
package sysmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// A Limit is how many more bytes the process may take, and what bounds it.
type Limit struct {
	Bytes  int64
	Source string // "address-space limit", "cgroup memory limit" or "available memory"
}

func (l Limit) String() string { return fmt.Sprintf("%s (%s)", Bytes(l.Bytes), l.Source) }

// Headroom returns the tightest of the limits this process runs under, in
// bytes it may still add; ok is false when none could be read.
func Headroom() (l Limit, ok bool) {
	consider := func(bytes int64, source string) {
		if bytes < 0 {
			bytes = 0
		}
		if !ok || bytes < l.Bytes {
			l, ok = Limit{Bytes: bytes, Source: source}, true
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &rl); err == nil && rl.Cur != ^uint64(0) && rl.Cur < 1<<62 {
		if vsz, err := status("VmSize"); err == nil {
			consider(int64(rl.Cur)-vsz, "address-space limit")
		}
	}
	if max, err := readInt("/sys/fs/cgroup/memory.max"); err == nil {
		if cur, err := readInt("/sys/fs/cgroup/memory.current"); err == nil {
			consider(max-cur, "cgroup memory limit")
		}
	}
	if avail, err := meminfo("MemAvailable"); err == nil {
		consider(avail, "available memory")
	}
	return l, ok
}

// Bytes formats n bytes for a person: "3.2 GB", "950 MB".
func Bytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d kB", (n+999)/1000)
}

// status reads a "kB" field of /proc/self/status in bytes.
func status(field string) (int64, error) { return kbField("/proc/self/status", field) }

func meminfo(field string) (int64, error) { return kbField("/proc/meminfo", field) }

func kbField(path, field string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("sysmem: no %s in %s", field, path)
}

// readInt reads a file holding one integer ("max" is an error).
func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// PeakRSS returns the process's peak resident set size in bytes, 0 if it
// cannot be read (Linux reports ru_maxrss in KiB).
func PeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}
