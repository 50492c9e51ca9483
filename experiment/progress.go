package experiment

import (
	"fmt"
	"io"
	"os"
	"time"

	"calm/em"
)

// progress is an em.Recorder that shows the epoch, batch, speed and time
// left. On a terminal it redraws one line; elsewhere (a log file, CI) it
// prints a line per epoch only.
type progress struct {
	w      io.Writer
	tty    bool
	epochs int
	images int
	start  time.Time
	done   time.Duration // time of finished epochs
}

func newProgress(w io.Writer, epochs, images int) *progress {
	if epochs == 0 {
		epochs = 15
	}
	p := &progress{w: w, epochs: epochs, images: images, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) Record(e em.Event) error {
	if e.Batch == 0 { // end of an epoch
		p.done += e.Elapsed
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "epoch %2d/%d  LL %.6g  %.1f s  %.0f images/s\n",
			e.Epoch, p.epochs, e.LogLik, e.Elapsed.Seconds(), float64(e.Images)/e.Elapsed.Seconds())
		return nil
	}
	if !p.tty {
		return nil
	}
	rate := float64(e.Images) / e.Elapsed.Seconds()
	left := float64(p.images-e.Images)/rate + float64(p.epochs-e.Epoch)*float64(p.images)/rate
	fmt.Fprintf(p.w, "\r\033[Kepoch %2d/%d  batch %d/%d  %.0f images/s  ETA %s",
		e.Epoch, p.epochs, e.Batch, e.Batches, rate, (time.Duration(left) * time.Second).Round(time.Second))
	return nil
}
