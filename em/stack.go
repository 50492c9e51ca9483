package em

import (
	"fmt"
	"io"
	"math"

	"calm/dataset"
	"calm/estep"
	"calm/graph"

	"gorgonia.org/tensor"
)

// A StackLayer is one layer of a stack to train: the EM settings of its
// layer (with its own Recorder, Context and Resume), and the transform of
// its log joint into the next layer's input (unused on the top layer).
type StackLayer struct {
	Settings  Settings
	Transform graph.Transform
}

// A Trained layer is one layer of a trained stack.
type Trained struct {
	*Result                   // its EM run: θ, mixing weights, history, configuration
	Transform graph.Transform // what the next layer sees of it
	// Scale and Shift standardise its transformed maps channel by channel
	// (x·Scale + Shift); they are measured once a layer is put on top.
	Scale, Shift []float32
}

// A Stack is a network of CALM layers, each learned by EM on what the
// layers below make of the images. One layer is a stack of one.
type Stack struct {
	Layers []Trained
	// Whitening, when set, whitens the images in front of the first layer:
	// the stack's functions take images already whitened by it
	// (Whitening.Source); SaveStack and LoadStack keep it.
	Whitening *Whitening
}

// DefaultNormSample is how many images the standardisation of a layer's
// transformed maps is measured on.
const DefaultNormSample = 10000

// TrainStack trains the layers of a stack greedily, one after the other:
// layer 1 by EM on src; then its transformed maps are measured on the first
// normSample images (0: DefaultNormSample) for their standardisation, and
// layer 2 is trained by EM on them, streamed (each batch of images is
// carried through the layers below as it is read: no layer's maps are ever
// held for the whole set), and so on. done holds layers already trained
// (of a resumed run); their Scale and Shift are kept if set. afterLayer, if
// not nil, is called with the stack so far after each layer is trained and
// measured, so that it can be saved.
func TrainStack(src dataset.Source, layers []StackLayer, done []Trained, normSample int, afterLayer func(*Stack) error) (*Stack, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("em: a stack of no layers")
	}
	if len(done) > len(layers) {
		return nil, fmt.Errorf("em: %d layers done of a stack of %d", len(done), len(layers))
	}
	if normSample <= 0 {
		normSample = DefaultNormSample
	}
	st := &Stack{Layers: append([]Trained(nil), done...)}
	for l := len(done); l < len(layers); l++ {
		in := src
		var input io.Closer // the maps of the layers below, when l > 0
		if l > 0 {
			below := &st.Layers[l-1]
			if below.Scale == nil {
				if err := st.measure(src, l-1, normSample, layers[l].Settings.Ops, layers[l].Settings.Batch); err != nil {
					return nil, err
				}
				if afterLayer != nil {
					if err := afterLayer(st); err != nil {
						return nil, err
					}
				}
			}
			maps, err := st.Input(src, l, layers[l].Settings.Ops, layers[l].Settings.Batch)
			if err != nil {
				return nil, err
			}
			in, input = maps, maps
		}
		res, err := Train(in, layers[l].Settings)
		if input != nil {
			// The maps of the layers below are for this layer alone:
			// release their graph before the next one is built.
			if cerr := input.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", l+1, err)
		}
		st.Layers = append(st.Layers, Trained{Result: res, Transform: layers[l].Transform})
		if afterLayer != nil {
			if err := afterLayer(st); err != nil {
				return nil, err
			}
		}
	}
	return st, nil
}

// Stages returns the first n layers of the stack as the stack graphs see
// them, for batches of up to batch images.
func (s *Stack) Stages(n, batch int) []estep.Stage {
	stages := make([]estep.Stage, n)
	for j := range stages {
		stages[j] = estep.Stage{Config: s.Layers[j].Config, Transform: s.Layers[j].Transform}
		stages[j].Config.Batch = batch
	}
	return stages
}

// Params returns the parameters of the first n layers.
func (s *Stack) Params(n int) []estep.StageParams {
	params := make([]estep.StageParams, n)
	for j := range params {
		l := &s.Layers[j]
		params[j] = estep.StageParams{Theta: l.Theta, LogPrior: l.LogPrior, Variance: l.Variance, Variances: l.Variances}
		if l.Scale != nil {
			params[j].Scale = vector(l.Scale)
			params[j].Shift = vector(l.Shift)
		}
	}
	return params
}

func vector(v []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(v))
}

// measure sets the Scale and Shift of layer l from the mean and standard
// deviation of each channel of its transformed maps over the first sample
// images of src, batch at a time (a channel that does not vary gets scale
// 1).
func (s *Stack) measure(src dataset.Source, l, sample int, ops graph.Ops, batch int) error {
	n, _, _, _ := src.Shape()
	sample = min(sample, n)
	if batch <= 0 {
		batch = DefaultBatch
	}
	batch = min(batch, sample)
	stages := s.Stages(l+1, batch)
	cfg := stages[0].Config
	maps, err := estep.NewMaps(stages, defaultOps(ops), false)
	if err != nil {
		return fmt.Errorf("em: layer %d's maps: %w", l+1, err)
	}
	defer maps.Close()
	k := stages[l].Config.Kernels
	per := maps.Len()
	hw := per / k
	sum, sq := make([]float64, k), make([]float64, k)
	out := make([]float32, batch*per)
	params := s.Params(l + 1)
	cfg.Batch = batch
	err = forEachBatch(src, cfg, sample, func(_ int, x *tensor.Dense) error {
		o := out[:x.Shape()[0]*per]
		if err := maps.RunInto(o, x, params); err != nil {
			return err
		}
		for i, v := range o {
			c := i / hw % k
			sum[c] += float64(v)
			sq[c] += float64(v) * float64(v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("em: layer %d's maps: %w", l+1, err)
	}
	count := float64(sample * hw)
	lay := &s.Layers[l]
	lay.Scale, lay.Shift = make([]float32, k), make([]float32, k)
	for c := 0; c < k; c++ {
		mean := sum[c] / count
		sd := math.Sqrt(max(sq[c]/count-mean*mean, 0))
		if sd < 1e-12 || math.IsNaN(sd) {
			sd = 1
		}
		lay.Scale[c], lay.Shift[c] = float32(1/sd), float32(-mean/sd)
	}
	return nil
}

// Input returns the dataset.Source of layer l's input (l ≥ 1): the images of src
// carried through layers 1…l as they are read, batch images at a time
// (0: the layers' batch) with the op set ops (nil: the default). Close
// releases its graphs.
func (s *Stack) Input(src dataset.Source, l int, ops graph.Ops, batch int) (*Maps, error) {
	if l < 1 || l > len(s.Layers) {
		return nil, fmt.Errorf("em: the input of layer %d of a stack of %d", l+1, len(s.Layers))
	}
	for j := 0; j < l; j++ {
		if s.Layers[j].Scale == nil {
			return nil, fmt.Errorf("em: layer %d has no standardisation", j+1)
		}
	}
	n, _, _, _ := src.Shape()
	if batch <= 0 {
		batch = s.Layers[0].Config.Batch
	}
	stages := s.Stages(l, min(batch, n))
	maps, err := estep.NewMaps(stages, defaultOps(ops), true)
	if err != nil {
		return nil, fmt.Errorf("em: layer %d's input: %w", l+1, err)
	}
	top := stages[l-1]
	next := top.Transform.Next(top.Config, 1, 1, 0)
	return &Maps{images: &batchReader{src: src, cfg: stages[0].Config}, maps: maps, params: s.Params(l), first: stages[0].Config,
		n: n, c: next.Channels, h: next.Rows, w: next.Cols}, nil
}

// Maps is the dataset.Source of the maps a stack's layers make of a source's
// images, computed as they are read (Stack.Input).
type Maps struct {
	images  *batchReader
	maps    *estep.StackGraph
	params  []estep.StageParams
	first   graph.Config // of the images
	n       int
	c, h, w int
}

// Shape implements dataset.Source.
func (m *Maps) Shape() (n, c, h, w int) { return m.n, m.c, m.h, m.w }

// Close releases the graphs.
func (m *Maps) Close() error {
	if testHookMapsClosed != nil {
		testHookMapsClosed()
	}
	return m.maps.Close()
}

// testHookMapsClosed, if set (by a test only, as in net/http), is called
// whenever a Maps is closed.
var testHookMapsClosed func()

// Read implements dataset.Source.
func (m *Maps) Read(dst []float32, start int) error {
	per := m.c * m.h * m.w
	if len(dst)%per != 0 {
		return fmt.Errorf("em: read of %d values, not whole maps of %d", len(dst), per)
	}
	count := len(dst) / per
	for done := 0; done < count; {
		size := min(count-done, m.first.Batch)
		x, err := m.images.read(start+done, size)
		if err != nil {
			return err
		}
		if err := m.maps.RunInto(dst[done*per:(done+size)*per], x, m.params); err != nil {
			return fmt.Errorf("em: maps of images %d–%d: %w", start+done, start+done+size-1, err)
		}
		done += size
	}
	return nil
}

// StackFeatures returns the features of every image of src under the
// stack: each entry of features (a layer's pooled log joint or posterior),
// one after the other, batch images at a time.
func StackFeatures(src dataset.Source, s *Stack, features []estep.LayerFeatures, ops graph.Ops, batch int) ([]float32, error) {
	return StackFeaturesInto(nil, src, s, features, ops, batch)
}

// StackFeaturesInto is StackFeatures into dst, which must hold every
// image's features; nil dst allocates them. It returns dst.
func StackFeaturesInto(dst []float32, src dataset.Source, s *Stack, features []estep.LayerFeatures, ops graph.Ops, batch int) ([]float32, error) {
	top := 0
	for _, f := range features {
		top = max(top, f.Layer)
	}
	n, _, _, _ := src.Shape()
	stages := s.Stages(top+1, min(max(batch, 1), n))
	f, err := estep.NewStackFeatures(stages, defaultOps(ops), features)
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	defer f.Close()
	cfg := stages[0].Config
	per := f.Len()
	out := dst
	if out == nil {
		out = make([]float32, n*per)
	}
	if len(out) != n*per {
		return nil, fmt.Errorf("em: features of %d images of %d values into %d values", n, per, len(out))
	}
	params := s.Params(top + 1)
	err = forEachBatch(src, cfg, n, func(first int, x *tensor.Dense) error {
		size := x.Shape()[0]
		if err := f.RunInto(out[first*per:(first+size)*per], x, params); err != nil {
			return fmt.Errorf("images %d–%d: %w", first, first+size-1, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("em: features: %w", err)
	}
	return out, nil
}
