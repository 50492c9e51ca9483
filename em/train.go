package em

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"calm/estep"
	"calm/graph"
	"calm/mstep"

	"gorgonia.org/tensor"
)

// Settings configure Train. The zero value of each field means its default.
type Settings struct {
	Kernels int // K; default 64
	Size    int // kernel width w; default 20
	Pad     int // zero padding p; default 0 (the zero value is meaningful)
	Batch   int // images per batch; default 1000

	MaxEpochs int     // default 15
	Tol       float64 // stop when the relative LL gain falls below Tol; 0 = never
	Seed      uint64  // seed of the initial θ ~ N(0,1) when Init is nil
	Init      *tensor.Dense

	Ops      graph.Ops // default graph.Fast{}
	Recorder Recorder  // optional

	// Context, when cancelled, stops training at the next batch boundary
	// with an error wrapping its cause; the epoch under way is dropped.
	Context context.Context

	// Resume continues a run from a checkpoint of it: θ and the history
	// after Resume.Epoch epochs. Init and Seed are then ignored. The result
	// is the same, bit for bit, as that of the uninterrupted run.
	Resume *Checkpoint
}

// Checkpoint is the state of a run after a whole epoch: all that training
// needs to go on (EM draws no random numbers after the initial θ).
type Checkpoint struct {
	Epoch        int           `json:"epoch"` // epochs done
	LogLik       []float64     `json:"loglik"`
	EpochSeconds []float64     `json:"epoch_seconds"`
	Theta        *tensor.Dense `json:"-"` // after epoch Epoch
}

// Event is what the loop reports to a Recorder.
type Event struct {
	Epoch   int           // 1-based
	Batch   int           // batches done in this epoch; 0 for an epoch's end
	Batches int           // batches per epoch
	Images  int           // images done in this epoch
	Elapsed time.Duration // since the epoch started
	LogLik  float64       // at an epoch's end: Σ_n ℓ_n under the θ before its update
	Theta   *tensor.Dense // at an epoch's end: the updated kernels (do not modify)

	// State is, at an epoch's end, the checkpoint to resume from. It shares
	// Theta and the history with the loop: copy what you keep past Record.
	State *Checkpoint
}

// Recorder observes training. An error from Record stops training and is
// returned by Train.
type Recorder interface {
	Record(Event) error
}

// Status says why training stopped.
type Status int

const (
	EpochLimit Status = iota // MaxEpochs epochs ran
	Converged                // the relative LL gain fell below Tol
)

func (s Status) String() string {
	if s == Converged {
		return "converged"
	}
	return "epoch limit"
}

// Result is the outcome of Train.
type Result struct {
	Theta        *tensor.Dense // the final kernels (K,C,w,w)
	LogLik       []float64     // LogLik[e] = Σ_n ℓ_n in epoch e+1, under the θ before its update
	EpochSeconds []float64
	Status       Status
	Config       graph.Config
}

// Config returns the layer configuration that s gives for images of
// shape (c,h,w), with defaults filled in.
func (s Settings) Config(c, h, w int) graph.Config {
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	return graph.Config{
		Kernels: def(s.Kernels, 64), Channels: c, Height: h, Width: w,
		Size: def(s.Size, 20), Pad: s.Pad, Batch: def(s.Batch, 1000),
	}
}

func (s Settings) ops() graph.Ops {
	if s.Ops == nil {
		return graph.Fast{}
	}
	return s.Ops
}

// Train runs batch EM on the images of src.
func Train(src Source, s Settings) (*Result, error) {
	n, c, h, w := src.Shape()
	cfg := s.Config(c, h, w)
	cfg.Batch = min(cfg.Batch, n)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	epochs := s.MaxEpochs
	if epochs == 0 {
		epochs = 15
	}
	if epochs < 0 || s.Tol < 0 || math.IsNaN(s.Tol) {
		return nil, fmt.Errorf("em: max epochs %d and tolerance %v, want both ≥ 0", epochs, s.Tol)
	}
	res := &Result{Config: cfg}
	theta, first := s.Init, 1
	if r := s.Resume; r != nil {
		if r.Epoch < 0 || r.Epoch > epochs || len(r.LogLik) != r.Epoch || len(r.EpochSeconds) != r.Epoch || r.Theta == nil {
			return nil, fmt.Errorf("em: checkpoint of epoch %d with %d log-likelihoods does not fit %d epochs", r.Epoch, len(r.LogLik), epochs)
		}
		theta, first = r.Theta, r.Epoch+1
		res.LogLik = append(res.LogLik, r.LogLik...)
		res.EpochSeconds = append(res.EpochSeconds, r.EpochSeconds...)
		res.Theta = theta
		if converged(res.LogLik, s.Tol) {
			res.Status = Converged
			return res, nil
		}
	}
	if theta == nil {
		theta = InitTheta(cfg.Kernels, c, cfg.Size, s.Seed)
	} else if want := (tensor.Shape{cfg.Kernels, c, cfg.Size, cfg.Size}); !theta.Shape().Eq(want) || theta.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("em: initial θ is %v %v, want float32 %v", theta.Dtype(), theta.Shape(), want)
	}
	if i := nonFinite(theta.Data().([]float32)); i >= 0 {
		return nil, fmt.Errorf("em: θ holds %v in kernel %d: give finite kernels", theta.Data().([]float32)[i], i/cfg.KernelLen())
	}
	e, err := estep.New(cfg, s.ops())
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	m, err := mstep.New(cfg, s.ops())
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	buf := make([]float32, cfg.Batch*cfg.ImageLen())
	batches := (n + cfg.Batch - 1) / cfg.Batch
	for epoch := first; epoch <= epochs; epoch++ {
		start := time.Now()
		stats := mstep.NewStats(cfg)
		for b := 0; b < batches; b++ {
			if s.Context != nil && s.Context.Err() != nil {
				return nil, fmt.Errorf("em: stopped in epoch %d: %w", epoch, context.Cause(s.Context))
			}
			lo := b * cfg.Batch
			size := min(cfg.Batch, n-lo)
			xv := buf[:size*cfg.ImageLen()]
			if err := src.Read(xv, lo); err != nil {
				return nil, fmt.Errorf("em: epoch %d: %w", epoch, err)
			}
			if i := nonFinite(xv); i >= 0 {
				return nil, fmt.Errorf("em: image %d holds %v: the data must be finite", lo+i/cfg.ImageLen(), xv[i])
			}
			x := tensor.New(tensor.WithShape(size, c, h, w), tensor.WithBacking(xv))
			er, err := e.Run(x, theta)
			if err != nil {
				return nil, fmt.Errorf("em: epoch %d, batch %d: %w", epoch, b+1, err)
			}
			if math.IsNaN(er.LogLik) || math.IsInf(er.LogLik, 0) {
				return nil, fmt.Errorf("em: epoch %d, batch %d: log-likelihood is %v (NaN or Inf in the data or θ)", epoch, b+1, er.LogLik)
			}
			numer, err := m.Run(x, er.Posterior)
			if err != nil {
				return nil, fmt.Errorf("em: epoch %d, batch %d: %w", epoch, b+1, err)
			}
			if err := stats.Add(numer.Data().([]float32), er.LogCounts, er.LogLik, size); err != nil {
				return nil, fmt.Errorf("em: %w", err)
			}
			if s.Recorder != nil {
				ev := Event{Epoch: epoch, Batch: b + 1, Batches: batches, Images: lo + size, Elapsed: time.Since(start)}
				if err := s.Recorder.Record(ev); err != nil {
					return nil, err
				}
			}
		}
		theta, err = mstep.Update(cfg, stats)
		if err != nil {
			var nf *mstep.NonFiniteError
			if errors.As(err, &nf) {
				nf.Epoch = epoch
			}
			return nil, fmt.Errorf("em: %w", err)
		}
		res.Theta = theta
		res.LogLik = append(res.LogLik, stats.LogLik)
		res.EpochSeconds = append(res.EpochSeconds, time.Since(start).Seconds())
		if s.Recorder != nil {
			ev := Event{Epoch: epoch, Batches: batches, Images: n, Elapsed: time.Since(start), LogLik: stats.LogLik, Theta: theta,
				State: &Checkpoint{Epoch: epoch, LogLik: res.LogLik, EpochSeconds: res.EpochSeconds, Theta: theta}}
			if err := s.Recorder.Record(ev); err != nil {
				return nil, err
			}
		}
		if converged(res.LogLik, s.Tol) {
			res.Status = Converged
			break
		}
	}
	if res.Theta == nil {
		res.Theta = theta
	}
	return res, nil
}

// nonFinite returns the index of the first NaN or Inf in v, or −1.
func nonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN − NaN and Inf − Inf are NaN
			return i
		}
	}
	return -1
}

// converged reports whether the last relative LL gain fell below tol > 0.
func converged(loglik []float64, tol float64) bool {
	k := len(loglik)
	if tol <= 0 || k < 2 {
		return false
	}
	prev := loglik[k-2]
	return (loglik[k-1]-prev)/math.Abs(prev) < tol
}

// Features returns the image-wide features f[n,k] = logsumexp_u L[n,k,u]
// (N,K, row-major) of every image of src under θ (K,C,w,w) with padding
// pad, computed batch images at a time with the op set ops (nil: Fast).
func Features(src Source, theta *tensor.Dense, pad, batch int, ops graph.Ops) ([]float32, error) {
	n, c, h, w := src.Shape()
	ts := theta.Shape()
	if ts.Dims() != 4 || ts[1] != c || ts[2] != ts[3] {
		return nil, fmt.Errorf("em: features: θ of shape %v for images with %d channels", ts, c)
	}
	if ops == nil {
		ops = graph.Fast{}
	}
	cfg := graph.Config{Kernels: ts[0], Channels: c, Height: h, Width: w, Size: ts[2], Pad: pad, Batch: min(batch, n)}
	f, err := estep.NewFeatures(cfg, ops)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	out := make([]float32, 0, n*cfg.Kernels)
	buf := make([]float32, cfg.Batch*cfg.ImageLen())
	for first := 0; first < n; first += cfg.Batch {
		size := min(cfg.Batch, n-first)
		xv := buf[:size*cfg.ImageLen()]
		if err := src.Read(xv, first); err != nil {
			return nil, fmt.Errorf("em: features: %w", err)
		}
		v, err := f.Run(tensor.New(tensor.WithShape(size, c, h, w), tensor.WithBacking(xv)), theta)
		if err != nil {
			return nil, fmt.Errorf("em: features of images %d–%d: %w", first, first+size-1, err)
		}
		out = append(out, v...)
	}
	return out, nil
}
