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

// ModelFile is the name, in a run's directory, of the manifest of its
// trained layers; each layer's θ sits beside it as theta-<layer>.npy.
const ModelFile = "model.json"

// manifest is what model.json holds.
type manifest struct {
	Whitening *whiteningRecord `json:"whitening,omitempty"`
	Layers    []layerRecord    `json:"layers"`
}

type whiteningRecord struct {
	Filter  string    `json:"filter"` // file name in the same directory, float32 (C,C,f,f)
	Epsilon float64   `json:"epsilon"`
	Bias    []float32 `json:"bias"`
}

// whiteningFile is the name of the whitening filter beside model.json.
const whiteningFile = "whitening.npy"

type layerRecord struct {
	Theta     string          `json:"theta"` // file name in the same directory
	LogPrior  []float32       `json:"log_prior,omitempty"`
	Kernels   int             `json:"kernels"`
	Width     int             `json:"width"`
	Pad       int             `json:"pad"`
	Channels  int             `json:"channels"`
	Rows      int             `json:"rows"`
	Cols      int             `json:"cols"`
	Model     graph.Model     `json:"model"`
	Transform transformRecord `json:"transform"`
	Scale     []float32       `json:"scale,omitempty"`
	Shift     []float32       `json:"shift,omitempty"`
	LogLik    []float64       `json:"loglik"`
	Seconds   []float64       `json:"epoch_seconds"`
	Reseeded  []Reseed        `json:"reseeded,omitempty"`
	Status    string          `json:"status"`
}

type transformRecord struct {
	Posterior bool   `json:"posterior"`
	Pool      int    `json:"pool,omitempty"`
	Reduce    string `json:"reduce,omitempty"`
}

var reduceNames = map[graph.Reduction]string{graph.LogSumExpCells: "logsumexp", graph.MaxCells: "max", graph.MeanCells: "mean"}

// SaveStack writes the layers of s into dir: theta-<l>.npy for each, then
// model.json naming them, each written whole or not at all.
func SaveStack(dir string, s *Stack) error {
	var m manifest
	if wh := s.Whitening; wh != nil {
		if err := saveTheta(filepath.Join(dir, whiteningFile), wh.Filter); err != nil {
			return fmt.Errorf("em: save whitening: %w", err)
		}
		m.Whitening = &whiteningRecord{Filter: whiteningFile, Epsilon: wh.Epsilon, Bias: wh.Bias}
	}
	for l, t := range s.Layers {
		name := fmt.Sprintf("theta-%d.npy", l+1)
		if err := saveTheta(filepath.Join(dir, name), t.Theta); err != nil {
			return fmt.Errorf("em: save layer %d: %w", l+1, err)
		}
		c := t.Config
		rec := layerRecord{Theta: name, Kernels: c.Kernels, Width: c.Width, Pad: c.Pad, Channels: c.Channels, Rows: c.Rows, Cols: c.Cols, Model: c.Model,
			Transform: transformRecord{Posterior: t.Transform.Posterior, Pool: t.Transform.Pool},
			Scale:     t.Scale, Shift: t.Shift, LogLik: t.LogLik, Seconds: t.EpochSeconds, Reseeded: t.Reseeded, Status: t.Status.String()}
		if t.Transform.Pool > 1 {
			rec.Transform.Reduce = reduceNames[t.Transform.Reduce]
		}
		if t.LogPrior != nil {
			rec.LogPrior = t.LogPrior.Data().([]float32)
		}
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
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("em: %w in %s", ErrNoModel, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("em: %s: %w", path, err)
	}
	s := &Stack{}
	if r := m.Whitening; r != nil {
		if r.Filter != filepath.Base(r.Filter) {
			return nil, fmt.Errorf("em: %s: whitening names file %q, want a file beside it", path, r.Filter)
		}
		f, err := LoadTheta(filepath.Join(dir, r.Filter))
		if err != nil {
			return nil, fmt.Errorf("em: whitening: %w", err)
		}
		fs := f.Shape()
		if fs[0] != fs[1] || fs[2] != fs[3] || fs[2]%2 == 0 || len(r.Bias) != fs[0] {
			return nil, fmt.Errorf("em: %s: whitening filter of shape %v with %d biases", path, fs, len(r.Bias))
		}
		s.Whitening = &Whitening{Width: fs[2], Epsilon: r.Epsilon, Filter: f, Bias: r.Bias}
	}
	for l, rec := range m.Layers {
		if rec.Theta != filepath.Base(rec.Theta) {
			return nil, fmt.Errorf("em: %s: layer %d names θ file %q, want a file beside it", path, l+1, rec.Theta)
		}
		theta, err := LoadTheta(filepath.Join(dir, rec.Theta))
		if err != nil {
			return nil, fmt.Errorf("em: layer %d: %w", l+1, err)
		}
		cfg := graph.Config{Kernels: rec.Kernels, Width: rec.Width, Pad: rec.Pad, Channels: rec.Channels, Rows: rec.Rows, Cols: rec.Cols, Batch: 1, Model: rec.Model}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("em: %s: layer %d: %w", path, l+1, err)
		}
		if !theta.Shape().Eq(cfg.KernelShape()) {
			return nil, fmt.Errorf("em: %s: layer %d: θ of shape %v, the layer is %v", path, l+1, theta.Shape(), cfg.KernelShape())
		}
		tr := graph.Transform{Posterior: rec.Transform.Posterior, Pool: rec.Transform.Pool}
		if tr.Pool > 1 {
			found := false
			for r, name := range reduceNames {
				if name == rec.Transform.Reduce {
					tr.Reduce, found = r, true
				}
			}
			if !found {
				return nil, fmt.Errorf("em: %s: layer %d: unknown reduction %q", path, l+1, rec.Transform.Reduce)
			}
		}
		if (rec.Scale == nil) != (rec.Shift == nil) || rec.Scale != nil && (len(rec.Scale) != rec.Kernels || len(rec.Shift) != rec.Kernels) {
			return nil, fmt.Errorf("em: %s: layer %d: %d scales and %d shifts for %d kernels", path, l+1, len(rec.Scale), len(rec.Shift), rec.Kernels)
		}
		res := &Result{Layer: Layer{Theta: theta, Pad: rec.Pad}, LogLik: rec.LogLik, EpochSeconds: rec.Seconds, Reseeded: rec.Reseeded, Config: cfg}
		if rec.Status == Converged.String() {
			res.Status = Converged
		}
		if rec.LogPrior != nil {
			if len(rec.LogPrior) != rec.Kernels {
				return nil, fmt.Errorf("em: %s: layer %d: %d log weights for %d kernels", path, l+1, len(rec.LogPrior), rec.Kernels)
			}
			res.LogPrior = tensor.New(tensor.WithShape(rec.Kernels), tensor.WithBacking(rec.LogPrior))
		}
		s.Layers = append(s.Layers, Trained{Result: res, Transform: tr, Scale: rec.Scale, Shift: rec.Shift})
	}
	return s, nil
}
