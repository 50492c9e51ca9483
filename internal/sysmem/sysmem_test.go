package sysmem

import (
	"runtime"
	"testing"
)

// TestHeadroom reads this machine's limits: some must be readable on
// Linux, and the headroom must not exceed the available memory.
func TestHeadroom(t *testing.T) {
	l, ok := Headroom()
	if !ok {
		t.Fatal("no memory limit readable")
	}
	avail, err := meminfo("MemAvailable")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("headroom %v; available %s", l, Bytes(avail))
	if l.Bytes <= 0 || l.Bytes > avail {
		t.Errorf("headroom %d bytes, available memory %d", l.Bytes, avail)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{3_200_000_000: "3.2 GB", 950_000_000: "950 MB", 1500: "2 kB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestPeakRSS holds 64 MiB touched page by page: the peak must count them.
func TestPeakRSS(t *testing.T) {
	const size = 64 << 20
	b := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		b[i] = 1
	}
	if got := PeakRSS(); got < size {
		t.Errorf("peak RSS %d bytes after touching %d", got, size)
	}
	runtime.KeepAlive(b)
}
