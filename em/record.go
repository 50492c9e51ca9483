package em

import (
	"fmt"

	"calm/graph"

	"gorgonia.org/tensor"
)

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
	// Transform is what the next layer sees of this one; nil where no
	// layer is above it (in config.json and metrics.json).
	Transform *graph.Transform `json:"transform,omitempty"`
	MaxEpochs int              `json:"max_epochs,omitempty"`

	Theta        string    `json:"theta,omitempty"` // the θ file, beside the record's
	LogPrior     []float32 `json:"log_prior,omitempty"`
	Scale        []float32 `json:"scale,omitempty"` // the standardisation of the transformed maps
	Shift        []float32 `json:"shift,omitempty"`
	LogLik       []float64 `json:"loglik,omitempty"`
	EpochSeconds []float64 `json:"epoch_seconds,omitempty"`
	Reseeded     []Reseed  `json:"reseeded,omitempty"`
	Status       string    `json:"status,omitempty"`
}

// NewLayerRecord returns the record of a layer of configuration c (its
// batch is not recorded: it changes results by float rounding only).
func NewLayerRecord(c graph.Config) LayerRecord {
	return LayerRecord{Kernels: c.Kernels, Width: c.Width, Pad: c.Pad, Input: [3]int{c.Channels, c.Rows, c.Cols}, Model: c.Model}
}

// Record returns the record of a trained layer: its configuration, weights
// and history; θ's file name is left for the caller, who writes it.
func (t *Trained) Record(top bool) LayerRecord {
	r := NewLayerRecord(t.Config)
	if !top {
		tr := t.Transform
		r.Transform = &tr
	}
	r.LogPrior = float32s(t.LogPrior)
	r.Scale, r.Shift = t.Scale, t.Shift
	r.LogLik, r.EpochSeconds, r.Reseeded, r.Status = t.LogLik, t.EpochSeconds, t.Reseeded, t.Status.String()
	return r
}

// Config returns the layer's configuration with the given batch, checked.
func (r LayerRecord) Config(batch int) (graph.Config, error) {
	c := graph.Config{Kernels: r.Kernels, Width: r.Width, Pad: r.Pad, Channels: r.Input[0], Rows: r.Input[1], Cols: r.Input[2], Batch: batch, Model: r.Model}
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
