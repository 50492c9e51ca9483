package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"calm/em"
)

// logEvery is how often progress goes to a log that is not a terminal,
// where a redrawn line would pile up: often enough that no phase of a long
// run is silent for long, rarely enough to keep the log short.
const logEvery = time.Minute

// Progress is an em.Recorder that shows the epoch, batch, speed and time
// left. On a terminal it redraws one line; elsewhere (a log file, CI) it
// prints a line per epoch and one every logEvery in between.
type Progress struct {
	w      io.Writer
	tty    bool
	epochs int
	prefix string // "layer 2/3  " in a stack
	every  time.Duration
	last   time.Time // of the last line to a log
}

// NewProgress returns the progress line, on w, of layer l (0-based) of a
// stack of layers layers, trained for at most epochs epochs.
func NewProgress(w io.Writer, epochs, l, layers int) *Progress {
	p := &Progress{w: w, epochs: epochs, every: logEvery, last: time.Now()}
	if layers > 1 {
		p.prefix = fmt.Sprintf("layer %d/%d  ", l+1, layers)
	}
	p.tty = isTerminal(w)
	return p
}

// Record implements em.Recorder.
func (p *Progress) Record(e em.Event) error {
	if e.Seeded != nil {
		// Seeding can take a minute (k-means++ over thousands of kernels):
		// say what the wait before the first batch was.
		fmt.Fprintf(p.w, "%s%d kernels seeded in %.1f s\n", p.prefix, e.Seeded.Config.Kernels, e.Elapsed.Seconds())
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
	if !p.due() {
		return nil
	}
	rate := float64(e.Images) / e.Elapsed.Seconds()
	perEpoch := float64(e.Images) / float64(e.Batch) * float64(e.Batches) / rate
	left := perEpoch*float64(p.epochs-e.Epoch) + perEpoch - e.Elapsed.Seconds()
	fmt.Fprintf(p.w, "%s%sepoch %2d/%d  batch %d/%d  %.0f images/s  ETA %s%s",
		p.start(), p.prefix, e.Epoch, p.epochs, e.Batch, e.Batches, rate, (time.Duration(left) * time.Second).Round(time.Second), p.end())
	return nil
}

// due reports whether a progress line is to be shown now: always on a
// terminal, every p.every on a log.
func (p *Progress) due() bool {
	if p.tty {
		return true
	}
	if time.Since(p.last) < p.every {
		return false
	}
	p.last = time.Now()
	return true
}

// start and end frame a progress line: redrawn in place on a terminal, a
// line of its own in a log.
func (p *Progress) start() string {
	if p.tty {
		return "\r\033[K"
	}
	return ""
}

func (p *Progress) end() string {
	if p.tty {
		return ""
	}
	return "\n"
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
	if p.due() {
		fmt.Fprintf(p.w, "%s%sLL of the trained kernels  batch %d/%d%s", p.start(), p.prefix, e.Batch, e.Batches, p.end())
	}
	return nil
}

// NewWorking returns what experiment.Options.Working calls: on a terminal,
// a line redrawn with the pass, the images done and the time left; in a
// log, such a line every logEvery (the run logs each pass when it ends).
func NewWorking(w io.Writer) func(what string, done, total int, elapsed time.Duration) {
	return newWorking(w, isTerminal(w), logEvery)
}

func newWorking(w io.Writer, tty bool, every time.Duration) func(what string, done, total int, elapsed time.Duration) {
	last := time.Now()
	return func(what string, done, total int, elapsed time.Duration) {
		left := time.Duration(float64(elapsed) * float64(total-done) / float64(max(done, 1)))
		switch {
		case tty && done >= total:
			fmt.Fprint(w, "\r\033[K")
		case tty:
			fmt.Fprintf(w, "\r\033[K%s: %d of %d images, %s left", what, done, total, left.Round(time.Second))
		case done < total && time.Since(last) >= every:
			last = time.Now()
			fmt.Fprintf(w, "%s: %d of %d images, %s left\n", what, done, total, left.Round(time.Second))
		}
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
