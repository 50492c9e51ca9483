package em

import (
	"calm/dataset"
	"calm/graph"

	"gorgonia.org/tensor"
)

// A batchReader reads the images of a source a batch at a time, as a
// tensor of a layer's input shape backed by one reused buffer: every loop
// over a source's images (training, features, maps, statistics) reads
// through one.
type batchReader struct {
	src dataset.Source
	cfg graph.Config // the layer the images enter; its Batch bounds a batch
	buf []float32
}

// read returns the images first, first+1, …, first+size−1 (size at most
// cfg.Batch) as a (size, C, H, W) tensor, valid until the next read.
func (r *batchReader) read(first, size int) (*tensor.Dense, error) {
	need := size * r.cfg.ImageLen()
	if cap(r.buf) < need {
		r.buf = make([]float32, need)
	}
	x := r.buf[:need]
	if err := r.src.Read(x, first); err != nil {
		return nil, err
	}
	return tensor.New(tensor.WithShape(r.cfg.ImageShape(size)...), tensor.WithBacking(x)), nil
}

// forEachBatch calls fn with the images [0, n) of src, cfg.Batch at a time
// (the last batch may be shorter), in order, stopping at an error.
func forEachBatch(src dataset.Source, cfg graph.Config, n int, fn func(first int, x *tensor.Dense) error) error {
	r := &batchReader{src: src, cfg: cfg}
	for first := 0; first < n; first += cfg.Batch {
		x, err := r.read(first, min(cfg.Batch, n-first))
		if err != nil {
			return err
		}
		if err := fn(first, x); err != nil {
			return err
		}
	}
	return nil
}
