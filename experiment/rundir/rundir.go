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

// The files of a run's directory. The model's own files are em's to
// name: model.json (em.ModelFile), each layer's θ (em.ThetaFile) and
// checkpoint (em.CheckpointFile).
const (
	ConfigFile      = "config.json"   // the settings (experiment.RunConfig)
	MetricsFile     = "metrics.json"  // what was measured (experiment.Metrics)
	SeedsFile       = "seeds.json"    // the summary over seeds (experiment.Seeds)
	LogLikFigure    = "loglik.png"    // the log-likelihood of each layer per epoch
	EpochsFigure    = "epochs.png"    // the epoch curve
	PosteriorFigure = "posterior.png" // the posterior of a few test images
	LabelsFigure    = "labels.png"    // test accuracy against labelled images
)

// KernelsFigure is the figure of layer l's (0-based) kernels.
func KernelsFigure(l int) string { return fmt.Sprintf("kernels-%d.png", l+1) }

// FeaturesFile is the .npy file of a feature set's features of a split
// ("train", "test").
func FeaturesFile(set, split string) string { return fmt.Sprintf("features-%s-%s.npy", set, split) }

// LabelsFile is the .npy file of a split's labels, one per row of its
// FeaturesFile.
func LabelsFile(split string) string { return "labels-" + split + ".npy" }

// SeedDir is where the run of one seed of a run over seeds goes.
func SeedDir(out string, seed uint64) string { return filepath.Join(out, fmt.Sprintf("seed-%d", seed)) }

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
// model, metrics, layers' θ, kernel figures and checkpoints (every
// KernelsFigure and LayerDir, by the globs that match them).
func Clear(dir string) error {
	for _, pattern := range []string{em.ModelFile, MetricsFile, em.ThetaFiles, "kernels-*.png", "layer-*"} {
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
