package em

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"calm/graph"
	"calm/internal/atomicfile"

	"gorgonia.org/tensor"
)

// Checkpoint is the state of a run after a whole epoch: all that training
// needs to go on, since neither EM nor the repair draws random numbers after
// the initial θ.
type Checkpoint struct {
	Epoch        int           // epochs done
	LogLik       []float64     // one per epoch done
	EpochSeconds []float64     // one per epoch done
	Reseeded     []Reseed      // the repairs so far
	Theta        *tensor.Dense // after epoch Epoch
	LogPrior     *tensor.Dense // the log mixing weights; nil while they are uniform
	Images       int           // training images: a checkpoint resumes on the same data only
	// Config is the layer trained (its batch aside); the zero value, for a
	// checkpoint made without one, is not checked against the run.
	Config graph.Config
}

// Reseed records the kernels re-seeded after one epoch.
type Reseed struct {
	Epoch   int   `json:"epoch"`
	Kernels []int `json:"kernels"`
}

// check reports whether c can resume a run of cfg on n images that stops
// after maxEpochs.
func (c *Checkpoint) check(cfg graph.Config, n, maxEpochs int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("em: checkpoint: "+format, args...)
	}
	switch {
	case c.Theta == nil:
		return bad("no kernels")
	case c.Epoch < 0 || c.Epoch > maxEpochs || len(c.LogLik) != c.Epoch || len(c.EpochSeconds) != c.Epoch:
		return bad("epoch %d with %d log-likelihoods and %d timings does not fit %d epochs", c.Epoch, len(c.LogLik), len(c.EpochSeconds), maxEpochs)
	case !c.Theta.Shape().Eq(cfg.KernelShape()) || c.Theta.Dtype() != tensor.Float32:
		return bad("kernels of shape %v %v, the run has %v", c.Theta.Dtype(), c.Theta.Shape(), cfg.KernelShape())
	case c.LogPrior != nil && (!c.LogPrior.Shape().Eq(tensor.Shape{cfg.Kernels}) || c.LogPrior.Dtype() != tensor.Float32):
		return bad("mixing weights of shape %v, the run has %d kernels", c.LogPrior.Shape(), cfg.Kernels)
	case c.Images != n:
		return bad("taken on %d images, the run has %d", c.Images, n)
	case c.Config != (graph.Config{}) && c.Config != withBatch(cfg, c.Config.Batch):
		return bad("of a layer %+v, the run trains %+v", c.Config, withBatch(cfg, c.Config.Batch))
	}
	if i := nonFinite(c.Theta.Data().([]float32)); i >= 0 {
		return bad("θ holds %v in kernel %d", c.Theta.Data().([]float32)[i], i/cfg.KernelLen())
	}
	return nil
}

// withBatch returns c with the given batch.
func withBatch(c graph.Config, batch int) graph.Config {
	c.Batch = batch
	return c
}

// CheckpointFile is the name, in a run's directory, of the record of its
// last whole epoch; the θ file it names sits beside it.
const CheckpointFile = "checkpoint.json"

// checkpointRecord is what checkpoint.json holds: the layer's record (its
// configuration, θ's file and history) and where training stands.
type checkpointRecord struct {
	LayerRecord
	Epoch  int `json:"epoch"`
	Images int `json:"images"`
}

// SaveCheckpoint writes cp into dir: θ first, as checkpoint-N.npy, then
// checkpoint.json naming it, each written to a temporary file, synced and
// renamed into place; prev, the θ file of the checkpoint before (if any),
// is removed last. A crash or a full disk at any point leaves a complete
// checkpoint behind. It returns the name of the θ file it wrote.
func SaveCheckpoint(dir string, cp *Checkpoint, prev string) (string, error) {
	name := thetaFile(cp.Epoch)
	if err := saveTheta(filepath.Join(dir, name), cp.Theta); err != nil {
		return "", fmt.Errorf("em: checkpoint: %w", err)
	}
	rec := checkpointRecord{LayerRecord: NewLayerRecord(cp.Config), Epoch: cp.Epoch, Images: cp.Images}
	rec.LogLik, rec.EpochSeconds, rec.Reseeded, rec.Theta = cp.LogLik, cp.EpochSeconds, cp.Reseeded, name
	rec.LogPrior = float32s(cp.LogPrior)
	if err := atomicfile.WriteJSON(filepath.Join(dir, CheckpointFile), rec); err != nil {
		return "", fmt.Errorf("em: checkpoint: %w", err)
	}
	if prev != "" && prev != name {
		os.Remove(filepath.Join(dir, prev))
	}
	return name, nil
}

// thetaFile is the name of the θ file of the checkpoint of an epoch.
func thetaFile(epoch int) string { return fmt.Sprintf("checkpoint-%d.npy", epoch) }

// ErrNoCheckpoint is wrapped by LoadCheckpoint's error for a directory
// that holds none.
var ErrNoCheckpoint = errors.New("no checkpoint")

// LoadCheckpoint reads the checkpoint saved in dir, checking what it can
// without the run's settings (Settings.Normalize checks the rest).
func LoadCheckpoint(dir string) (*Checkpoint, error) {
	raw, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("em: %w in %s", ErrNoCheckpoint, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	var rec checkpointRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("em: %s: %w", filepath.Join(dir, CheckpointFile), err)
	}
	if rec.Theta == "" || rec.Theta != filepath.Base(rec.Theta) {
		return nil, fmt.Errorf("em: %s names θ file %q, want a file beside it", filepath.Join(dir, CheckpointFile), rec.Theta)
	}
	theta, err := LoadTheta(filepath.Join(dir, rec.Theta))
	if err != nil {
		return nil, fmt.Errorf("em: checkpoint: %w", err)
	}
	cp := &Checkpoint{Epoch: rec.Epoch, LogLik: rec.LogLik, EpochSeconds: rec.EpochSeconds,
		Reseeded: rec.Reseeded, Theta: theta, Images: rec.Images}
	if rec.Kernels != 0 {
		if cp.Config, err = rec.Config(1); err != nil {
			return nil, fmt.Errorf("em: checkpoint: %w", err)
		}
		cp.Config.Batch = 0
	}
	if rec.LogPrior != nil {
		if cp.LogPrior, err = rec.logPrior(); err != nil {
			return nil, fmt.Errorf("em: checkpoint: %w", err)
		}
	}
	return cp, nil
}

// Checkpointer is a Recorder that saves a checkpoint into Dir after every
// epoch (see SaveCheckpoint) and remembers the last epoch saved.
type Checkpointer struct {
	Dir   string
	Epoch int // of the last checkpoint written (or resumed from)
	prev  string
}

// NewCheckpointer returns the Checkpointer of dir, for a run that starts
// afresh (from nil) or resumes from a checkpoint saved there.
func NewCheckpointer(dir string, from *Checkpoint) *Checkpointer {
	c := &Checkpointer{Dir: dir}
	if from != nil {
		c.Epoch, c.prev = from.Epoch, thetaFile(from.Epoch)
	}
	return c
}

// Record implements Recorder.
func (c *Checkpointer) Record(e Event) error {
	if e.State == nil {
		return nil
	}
	name, err := SaveCheckpoint(c.Dir, e.State, c.prev)
	if err != nil {
		return err
	}
	c.prev, c.Epoch = name, e.State.Epoch
	return nil
}
