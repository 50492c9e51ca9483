package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"calm/em"
	"calm/graph"
	"calm/internal/atomicfile"
)

// The files of a run's directory that this package names; em names
// model.json (em.ModelFile) and each layer's checkpoint.json
// (em.CheckpointFile).
const (
	ConfigFile  = "config.json"  // the settings (experiment.RunConfig)
	MetricsFile = "metrics.json" // what was measured (experiment.Metrics)
	SeedsFile   = "seeds.json"   // the summary over seeds (experiment.Seeds)
)

// LayerDir is where layer l's (0-based) checkpoints go.
func LayerDir(out string, l int) string { return filepath.Join(out, fmt.Sprintf("layer-%d", l+1)) }

// EpochDir is where the kernels of the layer whose directory is dir
// (LayerDir) are kept after epoch e (0: as seeded), for the epoch curve.
func EpochDir(dir string, e int) string { return filepath.Join(dir, fmt.Sprintf("epoch-%d", e)) }

// WriteJSON writes v as indented JSON to path, whole or not at all.
func WriteJSON(path string, v any) error {
	if err := atomicfile.WriteJSON(path, v); err != nil {
		return fmt.Errorf("rundir: %w", err)
	}
	return nil
}

// Clear removes from dir what an earlier run left of its own making
// that a fresh run would not overwrite or that a resume would read: its
// model, metrics, layers' θ, figures and checkpoints.
func Clear(dir string) error {
	for _, pattern := range []string{em.ModelFile, MetricsFile, "theta-*.npy", "kernels-*.png", "layer-*"} {
		matches, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return fmt.Errorf("rundir: %w", err)
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return fmt.Errorf("rundir: %w", err)
			}
		}
	}
	return nil
}

// Load reads what an interrupted run left in dir: its trained layers
// and the checkpoint of the layer under way (nil if it had none yet), and
// checks that they fit the run's layers.
func Load(dir string, layers []em.StackLayer, cfgs []graph.Config, n int) ([]em.Trained, *em.Checkpoint, error) {
	var done []em.Trained
	st, err := em.LoadStack(dir)
	switch {
	case errors.Is(err, em.ErrNoModel):
	case err != nil:
		return nil, nil, fmt.Errorf("rundir: cannot resume from %s: %w", dir, err)
	default:
		done = st.Layers
	}
	if len(done) > len(layers) {
		return nil, nil, fmt.Errorf("rundir: cannot resume from %s: it holds %d layers, the run has %d", dir, len(done), len(layers))
	}
	if len(done) == len(layers) {
		return done, nil, nil
	}
	for l, t := range done {
		c, want := t.Config, cfgs[l]
		c.Batch = want.Batch // a memory bound, not part of the layer
		if c != want {
			return nil, nil, fmt.Errorf("rundir: cannot resume from %s: its layer %d is %+v, the run's %+v", dir, l+1, c, want)
		}
	}
	l := len(done)
	cp, err := em.LoadCheckpoint(LayerDir(dir, l))
	switch {
	case errors.Is(err, em.ErrNoCheckpoint):
		return done, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("rundir: cannot resume from %s: %w", dir, err)
	}
	s := layers[l].Settings
	s.Resume = cp
	if _, _, err := s.Normalize(n, cfgs[l].Channels, cfgs[l].Rows, cfgs[l].Cols); err != nil {
		return nil, nil, fmt.Errorf("rundir: cannot resume from %s: layer %d: %w", dir, l+1, err)
	}
	return done, cp, nil
}
