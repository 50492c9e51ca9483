package sysmem

import "testing"

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
