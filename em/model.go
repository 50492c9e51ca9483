package em

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"calm/graph"
	"calm/internal/atomicfile"
)

// ModelFile is the name, in a run's directory, of the manifest of its
// trained layers; each layer's θ sits beside it as theta-<layer>.npy.
const ModelFile = "model.json"

// manifest is what model.json holds.
type manifest struct {
	Whitening *whiteningRecord `json:"whitening,omitempty"`
	Layers    []LayerRecord    `json:"layers"`
}

type whiteningRecord struct {
	Filter  string    `json:"filter"` // file name in the same directory, float32 (C,C,f,f)
	Epsilon float64   `json:"epsilon"`
	Bias    []float32 `json:"bias"`
}

// whiteningFile is the name of the whitening filter beside model.json.
const whiteningFile = "whitening.npy"

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
		res := &Result{Layer: Layer{Theta: theta, LogPrior: logPrior, Pad: rec.Pad}, LogLik: rec.LogLik, EpochSeconds: rec.EpochSeconds, Reseeded: rec.Reseeded, Config: cfg}
		if rec.Status == Converged.String() {
			res.Status = Converged
		}
		s.Layers = append(s.Layers, Trained{Result: res, Transform: tr, Scale: rec.Scale, Shift: rec.Shift})
	}
	return s, nil
}
