package experiment

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"calm/em"
)

// CheckpointFile is the name, in the output directory, of the record of the
// last whole epoch; the θ it names sits beside it.
const CheckpointFile = "checkpoint.json"

type checkpointRecord struct {
	Epoch        int       `json:"epoch"`
	LogLik       []float64 `json:"loglik"`
	EpochSeconds []float64 `json:"epoch_seconds"`
	Theta        string    `json:"theta"` // file name in the same directory
}

// checkpointer is an em.Recorder that saves a checkpoint after every epoch:
// first θ under a name of its own, then the record naming it (each written
// atomically), then it removes the previous epoch's θ. A crash at any
// point leaves a complete checkpoint behind.
type checkpointer struct {
	dir   string
	prev  string
	epoch int // of the last checkpoint written or resumed from
}

func (c *checkpointer) Record(e em.Event) error {
	if e.State == nil {
		return nil
	}
	name := fmt.Sprintf("checkpoint-%d.npy", e.State.Epoch)
	if err := em.SaveTheta(filepath.Join(c.dir, name), e.State.Theta); err != nil {
		return fmt.Errorf("experiment: checkpoint: %w", err)
	}
	rec := checkpointRecord{Epoch: e.State.Epoch, LogLik: e.State.LogLik, EpochSeconds: e.State.EpochSeconds, Theta: name}
	if err := writeJSON(filepath.Join(c.dir, CheckpointFile), rec); err != nil {
		return fmt.Errorf("experiment: checkpoint: %w", err)
	}
	if c.prev != "" && c.prev != name {
		os.Remove(filepath.Join(c.dir, c.prev))
	}
	c.prev, c.epoch = name, e.State.Epoch
	return nil
}

// LoadCheckpoint reads the last checkpoint written into dir.
func LoadCheckpoint(dir string) (*em.Checkpoint, error) {
	raw, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if err != nil {
		return nil, fmt.Errorf("experiment: no checkpoint to resume from: %w", err)
	}
	var rec checkpointRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("experiment: %s: %w", CheckpointFile, err)
	}
	if rec.Theta != filepath.Base(rec.Theta) {
		return nil, fmt.Errorf("experiment: %s names θ file %q outside its directory", CheckpointFile, rec.Theta)
	}
	theta, err := em.LoadTheta(filepath.Join(dir, rec.Theta))
	if err != nil {
		return nil, fmt.Errorf("experiment: checkpoint: %w", err)
	}
	return &em.Checkpoint{Epoch: rec.Epoch, LogLik: rec.LogLik, EpochSeconds: rec.EpochSeconds, Theta: theta}, nil
}

// InterruptedError says that a run was stopped (its context cancelled) and
// which whole epoch its checkpoint holds.
type InterruptedError struct {
	Dir   string
	Epoch int // the last complete epoch, 0 if none
	Err   error
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("interrupted; %s holds the checkpoint of epoch %d", e.Dir, e.Epoch)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// recorders calls each recorder in turn.
type recorders []em.Recorder

func (rs recorders) Record(e em.Event) error {
	for _, r := range rs {
		if err := r.Record(e); err != nil {
			return err
		}
	}
	return nil
}
