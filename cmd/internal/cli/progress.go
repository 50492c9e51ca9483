package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"calm/em"
)

// Progress is an em.Recorder that shows the epoch, batch, speed and time
// left. On a terminal it redraws one line; elsewhere (a log file, CI) it
// prints a line per epoch only.
type Progress struct {
	w      io.Writer
	tty    bool
	epochs int
	prefix string // "layer 2/3  " in a stack
}

// NewProgress returns the progress line, on w, of layer l (0-based) of a
// stack of layers layers, trained for at most epochs epochs.
func NewProgress(w io.Writer, epochs, l, layers int) *Progress {
	p := &Progress{w: w, epochs: epochs}
	if layers > 1 {
		p.prefix = fmt.Sprintf("layer %d/%d  ", l+1, layers)
	}
	p.tty = isTerminal(w)
	return p
}

// Record implements em.Recorder.
func (p *Progress) Record(e em.Event) error {
	if e.Seeded != nil {
		return nil
	}
	if e.Final {
		return p.final(e)
	}
	if e.Batch == 0 { // end of an epoch
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "%sepoch %2d/%d  LL %.6g  %.1f s  %.0f images/s", p.prefix, e.Epoch, p.epochs, e.LogLik, e.Elapsed.Seconds(), float64(e.Images)/e.Elapsed.Seconds())
		if len(e.Reseeded) > 0 {
			fmt.Fprintf(p.w, "  re-seeded %v", e.Reseeded)
		}
		fmt.Fprintln(p.w)
		return nil
	}
	if !p.tty {
		return nil
	}
	rate := float64(e.Images) / e.Elapsed.Seconds()
	perEpoch := float64(e.Images) / float64(e.Batch) * float64(e.Batches) / rate
	left := perEpoch*float64(p.epochs-e.Epoch) + perEpoch - e.Elapsed.Seconds()
	fmt.Fprintf(p.w, "\r\033[K%sepoch %2d/%d  batch %d/%d  %.0f images/s  ETA %s",
		p.prefix, e.Epoch, p.epochs, e.Batch, e.Batches, rate, (time.Duration(left) * time.Second).Round(time.Second))
	return nil
}

// final shows the pass that measures the LL of the trained kernels.
func (p *Progress) final(e em.Event) error {
	if e.Batch == 0 {
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "%strained    LL %.6g  %.1f s (one E-step pass)\n", p.prefix, e.LogLik, e.Elapsed.Seconds())
		return nil
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%sLL of the trained kernels  batch %d/%d", p.prefix, e.Batch, e.Batches)
	}
	return nil
}

// NewWorking returns what experiment.Options.Working calls: on a terminal,
// a line redrawn with the pass, the images done and the time left; elsewhere
// nothing (the run logs each pass when it ends).
func NewWorking(w io.Writer) func(what string, done, total int, elapsed time.Duration) {
	if !isTerminal(w) {
		return nil
	}
	return func(what string, done, total int, elapsed time.Duration) {
		if done >= total {
			fmt.Fprint(w, "\r\033[K")
			return
		}
		left := time.Duration(float64(elapsed) * float64(total-done) / float64(max(done, 1)))
		fmt.Fprintf(w, "\r\033[K%s: %d of %d images, %s left", what, done, total, left.Round(time.Second))
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
