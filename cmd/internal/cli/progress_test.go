package cli

import (
	"strings"
	"testing"
	"time"

	"calm/em"
	"calm/graph"
)

// TestProgressLog checks what a log that is not a terminal gets: a line
// per epoch, and between them a line no more often than every; never the
// terminal's redraw codes.
func TestProgressLog(t *testing.T) {
	batches := []em.Event{
		{Batches: 3, Elapsed: 41 * time.Second, Seeded: &em.Checkpoint{Config: graph.Config{Kernels: 1600}}},
		{Epoch: 1, Batch: 1, Batches: 3, Images: 10, Elapsed: time.Second},
		{Epoch: 1, Batch: 2, Batches: 3, Images: 20, Elapsed: 2 * time.Second},
		{Epoch: 1, Batches: 3, Images: 30, Elapsed: 3 * time.Second, LogLik: 5},
		{Final: true, Epoch: 1, Batch: 1, Batches: 3, Images: 10, Elapsed: time.Second},
		{Final: true, Epoch: 1, Batches: 3, Images: 30, Elapsed: 3 * time.Second, LogLik: 6},
	}
	for _, tc := range []struct {
		name  string
		every time.Duration
		want  []string // the start of each line
	}{
		{"every batch", 0, []string{"1600 kernels seeded in 41.0 s", "epoch  1/1  batch 1/3", "epoch  1/1  batch 2/3", "epoch  1/1  LL 5", "LL of the trained kernels  batch 1/3", "trained    LL 6"}},
		{"rarely", time.Hour, []string{"1600 kernels seeded in 41.0 s", "epoch  1/1  LL 5", "trained    LL 6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			p := NewProgress(&b, 1, 0, 1)
			p.every, p.last = tc.every, time.Time{}
			if tc.every > 0 {
				p.last = time.Now()
			}
			for _, e := range batches {
				if err := p.Record(e); err != nil {
					t.Fatal(err)
				}
			}
			out := b.String()
			if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
				t.Errorf("terminal codes in a log: %q", out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines %q, want %d", len(lines), lines, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d: %q, want it to start %q", i+1, lines[i], w)
				}
			}
		})
	}
}

// TestWorkingLog checks the feature passes' progress in a log: a line
// with what is done and left while a pass runs, none once it is done.
func TestWorkingLog(t *testing.T) {
	var b strings.Builder
	w := newWorking(&b, false, 0)
	w("features of the test images", 250, 1000, time.Second)
	w("features of the test images", 1000, 1000, 4*time.Second)
	if want := "features of the test images: 250 of 1000 images, 3s left\n"; b.String() != want {
		t.Errorf("log %q, want %q", b.String(), want)
	}
}
