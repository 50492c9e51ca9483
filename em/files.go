package em

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"calm/graph"
	"calm/internal/atomicfile"
	"calm/mstep"

	"gorgonia.org/tensor"
)

// The files em reads and writes: model.json (a trained stack, SaveStack),
// checkpoint.json (a layer in training, SaveCheckpoint), both with one
// LayerRecord a layer, and the θ and whitening filters they name as .npy
// arrays (theta.go).

// A LayerRecord is how every file of a run describes one layer: model.json
// and checkpoint.json (with its kernels' file and history), config.json
// (its configuration alone) and metrics.json (with its history). Fields a
// file has no value for are left out of it.
type LayerRecord struct {
	Kernels int         `json:"kernels"`
	Width   int         `json:"width"`
	Pad     int         `json:"pad"`
	Input   [3]int      `json:"input"` // channels, rows, columns
	Model   graph.Model `json:"model"`
	// KernelVariances: each kernel has its own variance (Variances).
	KernelVariances bool `json:"kernel_variances,omitempty"`
	// Transform is what the next layer sees of this one; nil where no
	// layer is above it (in config.json and metrics.json).
	Transform *graph.Transform `json:"transform,omitempty"`
	MaxEpochs int              `json:"max_epochs,omitempty"`

	Theta        string    `json:"theta,omitempty"` // the θ file, beside the record's
	LogPrior     []float32 `json:"log_prior,omitempty"`
	Variance     float64   `json:"variance,omitempty"`  // σ², when learned; absent: 1
	Variances    []float64 `json:"variances,omitempty"` // σ_k², one per kernel, with KernelVariances
	Scale        []float32 `json:"scale,omitempty"`     // the standardisation of the transformed maps
	Shift        []float32 `json:"shift,omitempty"`
	LogLik       []float64 `json:"loglik,omitempty"`
	FinalLogLik  *float64  `json:"final_loglik,omitempty"` // under the kernels of the last epoch
	EpochSeconds []float64 `json:"epoch_seconds,omitempty"`
	Reseeded     []Reseed  `json:"reseeded,omitempty"`
	Status       string    `json:"status,omitempty"`
}

// NewLayerRecord returns the record of a layer of configuration c (its
// batch is not recorded: it changes results by float rounding only).
func NewLayerRecord(c graph.Config) LayerRecord {
	return LayerRecord{Kernels: c.Kernels, Width: c.Width, Pad: c.Pad, Input: [3]int{c.Channels, c.Rows, c.Cols}, Model: c.Model, KernelVariances: c.KernelVariances}
}

// checkVariance reports a recorded variance that is negative or not
// finite (0, absent, is the paper's 1), and variances per kernel that are
// not one positive finite value for each kernel of a layer that has them.
func (r LayerRecord) checkVariance() error {
	if r.Variance < 0 || math.IsNaN(r.Variance) || math.IsInf(r.Variance, 0) {
		return fmt.Errorf("variance %v: want a finite σ² > 0, or none", r.Variance)
	}
	if r.Variances == nil {
		return nil
	}
	if !r.KernelVariances || len(r.Variances) != r.Kernels {
		return fmt.Errorf("%d variances for %d kernels (a variance per kernel: %v)", len(r.Variances), r.Kernels, r.KernelVariances)
	}
	for k, v := range r.Variances {
		if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("variance %v of kernel %d: want a finite σ² > 0", v, k)
		}
	}
	return nil
}

// Record returns the record of a trained layer: its configuration, weights
// and history; θ's file name is left for the caller, who writes it.
func (t *Trained) Record(top bool) LayerRecord {
	r := NewLayerRecord(t.Config)
	if !top {
		tr := t.Transform
		r.Transform = &tr
	}
	r.LogPrior, r.Variance, r.Variances = float32s(t.LogPrior), t.Variance, t.Variances
	r.Scale, r.Shift = t.Scale, t.Shift
	r.LogLik, r.FinalLogLik, r.EpochSeconds, r.Reseeded, r.Status = t.LogLik, t.FinalLogLik, t.EpochSeconds, t.Reseeded, t.Status.String()
	return r
}

// Config returns the layer's configuration with the given batch, checked.
func (r LayerRecord) Config(batch int) (graph.Config, error) {
	c := graph.Config{Kernels: r.Kernels, Width: r.Width, Pad: r.Pad, Channels: r.Input[0], Rows: r.Input[1], Cols: r.Input[2], Batch: batch, Model: r.Model, KernelVariances: r.KernelVariances}
	return c, c.Validate()
}

// logPrior returns the record's log mixing weights as a tensor (nil for
// uniform weights), checked against its kernels.
func (r LayerRecord) logPrior() (*tensor.Dense, error) {
	if r.LogPrior == nil {
		return nil, nil
	}
	if len(r.LogPrior) != r.Kernels {
		return nil, fmt.Errorf("%d log mixing weights for %d kernels", len(r.LogPrior), r.Kernels)
	}
	if k := nonFinite(r.LogPrior); k >= 0 {
		return nil, fmt.Errorf("log mixing weight %d is %v", k, r.LogPrior[k])
	}
	return tensor.New(tensor.WithShape(r.Kernels), tensor.WithBacking(r.LogPrior)), nil
}

func float32s(t *tensor.Dense) []float32 {
	if t == nil {
		return nil
	}
	return t.Data().([]float32)
}

// ModelFile is the name, in a run's directory, of the manifest of its
// trained layers; each layer's θ sits beside it as theta-<layer>.npy.
const ModelFile = "model.json"

// manifest is what model.json holds.
type manifest struct {
	Whitening *whiteningRecord `json:"whitening,omitempty"`
	Layers    []LayerRecord    `json:"layers"`
}

type whiteningRecord struct {
	Filter   string    `json:"filter"` // file name in the same directory, float32 (C,C,f,f), or (C·f·f,C,f,f) for patches
	Epsilon  float64   `json:"epsilon"`
	Bias     []float32 `json:"bias"`
	Patches  bool      `json:"patches,omitempty"`  // Whitening.Patches
	Contrast float64   `json:"contrast,omitempty"` // Whitening.Contrast
}

// whiteningFile is the name of the whitening filter beside model.json.
const whiteningFile = "whitening.npy"

// ThetaFile is the name SaveStack gives layer l's (0-based) θ in a
// model's directory; ThetaFiles is the glob that matches every one.
func ThetaFile(l int) string { return fmt.Sprintf("theta-%d.npy", l+1) }

// ThetaFiles matches every ThetaFile.
const ThetaFiles = "theta-*.npy"

// SaveStack writes the layers of s into dir: theta-<l>.npy for each, then
// model.json naming them, each written whole or not at all.
func SaveStack(dir string, s *Stack) error {
	var m manifest
	if wh := s.Whitening; wh != nil {
		if err := saveTheta(filepath.Join(dir, whiteningFile), wh.Filter); err != nil {
			return fmt.Errorf("em: save whitening: %w", err)
		}
		m.Whitening = &whiteningRecord{Filter: whiteningFile, Epsilon: wh.Epsilon, Bias: wh.Bias, Patches: wh.Patches, Contrast: wh.Contrast}
	}
	for l, t := range s.Layers {
		name := ThetaFile(l)
		if err := saveTheta(filepath.Join(dir, name), t.Theta); err != nil {
			return fmt.Errorf("em: save layer %d: %w", l+1, err)
		}
		// Every layer's transform, the top's too: a stack saved after
		// each layer has trained is resumed with a layer on top of it.
		rec := t.Record(false)
		rec.Theta = name
		m.Layers = append(m.Layers, rec)
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, ModelFile), m); err != nil {
		return fmt.Errorf("em: save model: %w", err)
	}
	return nil
}

// ErrNoModel is wrapped by LoadStack's error for a directory that holds
// none.
var ErrNoModel = errors.New("no model")

// LoadStack reads the layers saved in dir by SaveStack. Each layer's
// Result holds its kernels, weights, configuration (with batch 1) and
// history.
func LoadStack(dir string) (*Stack, error) {
	path := filepath.Join(dir, ModelFile)
	var m manifest
	if err := readJSON(path, &m, ErrNoModel); err != nil {
		return nil, err
	}
	s := &Stack{}
	if r := m.Whitening; r != nil {
		if r.Filter != filepath.Base(r.Filter) {
			return nil, fmt.Errorf("em: %s: whitening names file %q, want a file beside it", path, r.Filter)
		}
		f, err := loadTheta(filepath.Join(dir, r.Filter))
		if err != nil {
			return nil, fmt.Errorf("em: whitening: %w", err)
		}
		fs := f.Shape()
		outs := fs[1] // a whitening of images maps C channels to C
		if r.Patches {
			outs = fs[1] * fs[2] * fs[3]
		}
		if fs[0] != outs || fs[2] != fs[3] || !r.Patches && fs[2]%2 == 0 || len(r.Bias) != fs[0] || r.Patches && !(r.Contrast > 0) {
			return nil, fmt.Errorf("em: %s: whitening filter of shape %v with %d biases (patches %v, contrast %v)", path, fs, len(r.Bias), r.Patches, r.Contrast)
		}
		s.Whitening = &Whitening{Width: fs[2], Epsilon: r.Epsilon, Filter: f, Bias: r.Bias, Patches: r.Patches, Contrast: r.Contrast}
	}
	for l, rec := range m.Layers {
		if rec.Theta != filepath.Base(rec.Theta) {
			return nil, fmt.Errorf("em: %s: layer %d names θ file %q, want a file beside it", path, l+1, rec.Theta)
		}
		theta, err := loadTheta(filepath.Join(dir, rec.Theta))
		if err != nil {
			return nil, fmt.Errorf("em: layer %d: %w", l+1, err)
		}
		cfg, err := rec.Config(1)
		if err != nil {
			return nil, fmt.Errorf("em: %s: layer %d: %w", path, l+1, err)
		}
		if !theta.Shape().Eq(cfg.KernelShape()) {
			return nil, fmt.Errorf("em: %s: layer %d: θ of shape %v, the layer is %v", path, l+1, theta.Shape(), cfg.KernelShape())
		}
		var tr graph.Transform
		if rec.Transform != nil {
			tr = *rec.Transform
		}
		if (rec.Scale == nil) != (rec.Shift == nil) || rec.Scale != nil && (len(rec.Scale) != rec.Kernels || len(rec.Shift) != rec.Kernels) {
			return nil, fmt.Errorf("em: %s: layer %d: %d scales and %d shifts for %d kernels", path, l+1, len(rec.Scale), len(rec.Shift), rec.Kernels)
		}
		logPrior, err := rec.logPrior()
		if err != nil {
			return nil, fmt.Errorf("em: %s: layer %d: %w", path, l+1, err)
		}
		if err := rec.checkVariance(); err != nil {
			return nil, fmt.Errorf("em: %s: layer %d: %w", path, l+1, err)
		}
		res := &Result{Layer: Layer{Theta: theta, LogPrior: logPrior, Pad: rec.Pad, Variance: rec.Variance, Variances: rec.Variances}, LogLik: rec.LogLik, FinalLogLik: rec.FinalLogLik, EpochSeconds: rec.EpochSeconds, Reseeded: rec.Reseeded, Config: cfg}
		for _, st := range []Status{Converged, Stopped} {
			if rec.Status == st.String() {
				res.Status = st
			}
		}
		s.Layers = append(s.Layers, Trained{Result: res, Transform: tr, Scale: rec.Scale, Shift: rec.Shift})
	}
	return s, nil
}

// CheckpointFile is the name, in a run's directory, of the record of its
// last whole epoch; the θ file it names sits beside it.
const CheckpointFile = "checkpoint.json"

// checkpointRecord is what checkpoint.json holds: the layer's record (its
// configuration, θ's file and history) and where training stands.
type checkpointRecord struct {
	LayerRecord
	Epoch   int            `json:"epoch"`
	Images  int            `json:"images"`
	Running *mstep.Running `json:"running,omitempty"` // stepwise EM's statistics; float64 round-trips exactly in JSON
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
	rec := checkpointRecord{LayerRecord: NewLayerRecord(cp.Config), Epoch: cp.Epoch, Images: cp.Images, Running: cp.Running}
	rec.LogLik, rec.EpochSeconds, rec.Reseeded, rec.Theta = cp.LogLik, cp.EpochSeconds, cp.Reseeded, name
	rec.LogPrior, rec.Variance, rec.Variances = float32s(cp.LogPrior), cp.Variance, cp.Variances
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
	var rec checkpointRecord
	if err := readJSON(filepath.Join(dir, CheckpointFile), &rec, ErrNoCheckpoint); err != nil {
		return nil, err
	}
	if rec.Theta == "" || rec.Theta != filepath.Base(rec.Theta) {
		return nil, fmt.Errorf("em: %s names θ file %q, want a file beside it", filepath.Join(dir, CheckpointFile), rec.Theta)
	}
	theta, err := loadTheta(filepath.Join(dir, rec.Theta))
	if err != nil {
		return nil, fmt.Errorf("em: checkpoint: %w", err)
	}
	cp := &Checkpoint{Epoch: rec.Epoch, LogLik: rec.LogLik, EpochSeconds: rec.EpochSeconds,
		Reseeded: rec.Reseeded, Theta: theta, Images: rec.Images, Running: rec.Running, Variance: rec.Variance, Variances: rec.Variances}
	if err := rec.checkVariance(); err != nil {
		return nil, fmt.Errorf("em: checkpoint: %w", err)
	}
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

// readJSON reads the JSON file path into v; for a missing file its error
// wraps missing and names the directory.
func readJSON(path string, v any, missing error) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("em: %w in %s", missing, filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("em: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("em: %s: %w", path, err)
	}
	return nil
}
