package experiment

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"time"
	"unsafe"

	"calm/classify"
	"calm/em"
	"calm/graph"
	"calm/internal/atomicfile"
	"calm/viz"

	"codeberg.org/sbinet/npyio"
)

// featureSet is one set of features of the labelled and the test images.
type featureSet struct {
	name        string
	train, test []float32
	d           int
	owned       bool // train may be standardised in place
}

// evaluate pools the features of each pooling (of the top layer and, with
// several, of all layers together), fits the classifier on each (and on the
// pixels), runs the label-efficiency study and writes what was asked into
// m and opt.Out.
func evaluate(ctx context.Context, d Data, opt Options, st *em.Stack, ops graph.Ops, batch int, m *Metrics, logf func(string, ...any)) error {
	counts := labelCounts(opt.LabelCounts, len(d.Labels))
	subsets := balancedSubsets(d.Labels, d.Classes, counts)
	study := map[int]map[string]float64{}
	var series []viz.Series
	fit := func(fs featureSet, settings classify.Settings) (*Evaluation, error) {
		start := time.Now()
		settings.C = opt.C
		var validation []float64
		if opt.ChooseC {
			c, accs, err := classify.ChooseC(fs.train, d.Labels, fs.d, d.Classes, classify.DefaultCGrid, 1.0/6, settings)
			if err != nil {
				return nil, fmt.Errorf("experiment: %s: %w", fs.name, err)
			}
			settings.C, validation = c, accs
			logf("C for %s by validation on a sixth of the labels: %v (held-out accuracies %.4f for C = %v)\n", fs.name, c, accs, classify.DefaultCGrid)
		}
		if settings.C == 0 {
			settings.C = 1
		}
		train := fs.train
		if !fs.owned {
			train = slices.Clone(train)
		}
		// The features are standardised in place: one copy of them in memory.
		model, f, err := classify.TrainInPlace(train, d.Labels, fs.d, d.Classes, settings)
		if err != nil {
			return nil, fmt.Errorf("experiment: %s: %w", fs.name, err)
		}
		trainAcc, _ := classify.Score(model.PredictStandardised(train), d.Labels, d.Classes)
		testAcc, conf := classify.Score(model.Predict(fs.test), d.TestLabels, d.Classes)
		ev := &Evaluation{Pooling: fs.name, Features: fs.d, C: settings.C, Validation: validation,
			TrainAccuracy: trainAcc, TestAccuracy: testAcc, Confusion: conf, Classifier: f}
		logf("softmax on %d %s features: train %.2f %%, test %.2f %% (%d iterations, %s, %.1f s)\n",
			fs.d, fs.name, 100*trainAcc, 100*testAcc, f.Iterations, f.Status, time.Since(start).Seconds())
		// What fewer labels buy, on the same features.
		accs, err := labelStudy(ctx, train, fs.test, fs.d, d, model, subsets, settings)
		if err != nil {
			return nil, fmt.Errorf("experiment: %s: %w", fs.name, err)
		}
		if len(accs) > 0 {
			accs[len(accs)-1] = testAcc // the whole set: the fit above
			series = append(series, viz.Series{Name: fs.name, Labels: counts, Accuracy: accs})
		}
		for i, n := range counts {
			if study[n] == nil {
				study[n] = map[string]float64{}
			}
			study[n][fs.name] = accs[i]
		}
		m.ClassifierSeconds += time.Since(start).Seconds()
		return ev, nil
	}
	// Features are computed at most 250 images at a time: a batch's log
	// joints are the largest buffer of a run, and features gain nothing
	// from larger batches.
	batch = max(1, min(batch, 250))
	top := len(st.Layers) - 1
	type set struct {
		name   string
		pool   graph.Pooling
		layers []int
	}
	var sets []set
	for _, p := range opt.Pools {
		sets = append(sets, set{p.Name(), p, []int{top}})
	}
	if top > 0 {
		all := make([]int, top+1)
		for l := range all {
			all[l] = l
		}
		for _, p := range opt.Pools {
			sets = append(sets, set{p.Name() + "-all", p, all})
		}
	}
	if opt.Features {
		if err := saveLabels(opt.Out, d); err != nil {
			return err
		}
	}
	for _, fset := range sets {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start := time.Now()
		train, err := em.StackFeatures(d.Labelled, st, fset.layers, fset.pool, ops, batch)
		if err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
		test, err := em.StackFeatures(d.Test, st, fset.layers, fset.pool, ops, batch)
		if err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
		fs := featureSet{name: fset.name, train: train, test: test, d: len(test) / len(d.TestLabels), owned: true}
		took := time.Since(start).Seconds()
		m.FeaturesSeconds += took
		logf("features (%s, %d per image) of %d + %d images: %.1f s\n", fs.name, fs.d, len(d.Labels), len(d.TestLabels), took)
		if opt.Features {
			if err := saveFeatures(opt.Out, fs); err != nil {
				return err
			}
		}
		ev, err := fit(fs, classify.Settings{})
		if err != nil {
			return err
		}
		m.Evaluations = append(m.Evaluations, *ev)
	}
	main := m.Evaluations[0]
	m.Pooling, m.TrainAccuracy, m.TestAccuracy, m.Confusion, m.Classifier = main.Pooling, &main.TrainAccuracy, &main.TestAccuracy, main.Confusion, main.Classifier
	logf("confusion matrix of the %s features (rows: true class, columns: predicted):\n", main.Pooling)
	for i, row := range main.Confusion {
		logf("  %d:", i)
		for _, v := range row {
			logf(" %5d", v)
		}
		logf("\n")
	}
	if opt.Pixels {
		train, err := pixels(d.Labelled)
		if err != nil {
			return err
		}
		test, err := pixels(d.Test)
		if err != nil {
			return err
		}
		_, c, h, w := d.Test.Shape()
		ev, err := fit(featureSet{name: "pixels", train: train, test: test, d: c * h * w}, classify.Settings{})
		if err != nil {
			return err
		}
		m.PixelTrainAccuracy, m.PixelTestAccuracy, m.PixelClassifier = &ev.TrainAccuracy, &ev.TestAccuracy, ev.Classifier
	}
	for _, n := range counts {
		m.Labels = append(m.Labels, LabelPoint{Labels: n, Accuracy: study[n]})
	}
	if len(series) > 0 {
		if err := viz.SaveLabels(filepath.Join(opt.Out, "labels.png"), d.Name+": test accuracy against labelled training images", series...); err != nil {
			return err
		}
	}
	return nil
}

// labelStudy returns the test accuracy of the classifier fitted on each
// subset of the labelled rows (all but the last subset, the whole set,
// whose fit the caller has; its entry is left 0). train holds the rows as
// model standardised them (TrainInPlace), so the test rows are standardised
// the same way for the subsets' models.
func labelStudy(ctx context.Context, train, test []float32, dim int, d Data, model *classify.Model, subsets [][]int, settings classify.Settings) ([]float64, error) {
	if len(subsets) == 0 {
		return nil, nil
	}
	testStd := make([]float32, len(test))
	model.Standardise(testStd, test)
	accs := make([]float64, len(subsets))
	for i, sub := range subsets[:len(subsets)-1] {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m, _, err := classify.TrainInPlace(rows(train, dim, sub), pick(d.Labels, sub), dim, d.Classes, settings)
		if err != nil {
			return nil, fmt.Errorf("on %d labels: %w", len(sub), err)
		}
		accs[i], _ = classify.Score(m.Predict(testStd), d.TestLabels, d.Classes)
	}
	return accs, nil
}

// labelCounts returns the counts of the study below n, and n itself.
func labelCounts(counts []int, n int) []int {
	if len(counts) == 0 {
		return nil
	}
	var out []int
	for _, c := range counts {
		if c > 0 && c < n && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return append(out, n)
}

// balancedSubsets returns, for each count, the indices of a subset of that
// many labelled images with the classes as equal as they can be: a seeded
// permutation of each class's images, taken from the front (so that each
// subset holds the smaller ones). The whole set for the last count.
func balancedSubsets(labels []byte, classes int, counts []int) [][]int {
	byClass := make([][]int, classes)
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range byClass {
		rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	}
	var out [][]int
	for _, n := range counts {
		var sub []int
		// Deal the images class by class, round after round, so that every
		// class gets ⌊n/classes⌋ or one more while it has images left.
		for round := 0; len(sub) < n; round++ {
			added := false
			for _, c := range byClass {
				if round < len(c) && len(sub) < n {
					sub, added = append(sub, c[round]), true
				}
			}
			if !added {
				break
			}
		}
		slices.Sort(sub)
		out = append(out, sub)
	}
	return out
}

// rows returns the rows idx of x (rows of d values).
func rows(x []float32, d int, idx []int) []float32 {
	out := make([]float32, 0, len(idx)*d)
	for _, i := range idx {
		out = append(out, x[i*d:(i+1)*d]...)
	}
	return out
}

func pick(labels []byte, idx []int) []byte {
	out := make([]byte, len(idx))
	for j, i := range idx {
		out[j] = labels[i]
	}
	return out
}

// pixels returns every image of src, without a copy when src is in memory.
func pixels(src em.Source) ([]float32, error) {
	if im, ok := src.(*em.Images); ok {
		return im.Pixels(), nil
	}
	n, c, h, w := src.Shape()
	out := make([]float32, n*c*h*w)
	if err := src.Read(out, 0); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	return out, nil
}

// saveFeatures writes features-<pooling>-{train,test}.npy (float32, images
// × features).
func saveFeatures(dir string, fs featureSet) error {
	for _, f := range []struct {
		name string
		data []float32
	}{{"train", fs.train}, {"test", fs.test}} {
		if err := saveNpy(filepath.Join(dir, fmt.Sprintf("features-%s-%s.npy", fs.name, f.name)), f.data, len(f.data)/fs.d, fs.d); err != nil {
			return err
		}
	}
	return nil
}

// saveLabels writes labels-{train,test}.npy (uint8), the rows of every
// features-*.npy.
func saveLabels(dir string, d Data) error {
	for _, l := range []struct {
		name   string
		labels []byte
	}{{"train", d.Labels}, {"test", d.TestLabels}} {
		path := filepath.Join(dir, "labels-"+l.name+".npy")
		if err := atomicfile.Write(path, func(w io.Writer) error { return npyio.Write(w, l.labels) }); err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
	}
	return nil
}

// saveNpy writes data as a float32 .npy array of the given shape (one or
// two dimensions).
func saveNpy(path string, data []float32, shape ...int) error {
	var v any = data
	if len(shape) == 2 && len(data) > 0 {
		// npyio writes the shape of nested Go arrays: view the rows as
		// [cols]float32 arrays.
		row := reflect.ArrayOf(shape[1], reflect.TypeFor[float32]())
		v = reflect.NewAt(reflect.ArrayOf(shape[0], row), unsafe.Pointer(&data[0])).Elem().Slice(0, shape[0]).Interface()
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { return npyio.Write(w, v) }); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	return nil
}
