package experiment

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"calm/classify"
	"calm/dataset"
	"calm/em"
	"calm/estep"
	"calm/experiment/rundir"
	"calm/graph"
	"calm/internal/atomicfile"
	"calm/viz"

	"codeberg.org/sbinet/npyio"
)

// featureSet is one set of features of the labelled and the test images.
type featureSet struct {
	name string
	// train holds a row of d features for each labelled image, then, with
	// mirrored, one for each one's mirror (Options.Mirror), in the same
	// order: a fit with mirrors takes them as they are, without a copy.
	train, test []float32
	mirrored    bool
	d           int
	owned       bool        // train may be standardised in place
	validated   *validation // the validation of train, when the epoch curve made it; else nil
	// start is where the search for C starts: with mirrors, the epoch
	// curve's fit of the images' rows alone; else nil (from zero).
	start *classify.Model
}

// curveFeatures are the training features of the epoch curve's pooling
// under the kernels the run keeps, and their validation: the evaluation
// takes them instead of computing them again.
type curveFeatures struct {
	layers []estep.LayerFeatures
	train  []float32
	v      validation
}

// featureBatch is the most images whose features are computed at once: a
// batch's log joints are the largest buffer of a run, and features gain
// nothing from larger batches (nor change with them: each image's are its
// own). featureMapBytes bounds a batch's maps of one layer.
const (
	featureBatch    = 250
	featureMapBytes = 256 << 20
)

// featureBatchFor returns the images whose features st computes at once,
// at most batch: as many as keep each layer's maps (K·Uh·Uw float32 an
// image) of a batch within featureMapBytes.
func featureBatchFor(st *em.Stack, batch int) int {
	n := min(batch, featureBatch)
	for _, l := range st.Layers {
		n = min(n, featureMapBytes/(4*l.Config.MapLen()))
	}
	return max(1, n)
}

// evaluator fits the classifiers of a run the way a reviewer expects: every
// choice (C, the main feature set, the epoch curve) on the validation rows
// (validationRows), with the classifier fitted on the other labelled rows;
// then the chosen classifier refitted on every labelled row and scored on
// the test set, once. The test labels enter nothing but that score.
type evaluator struct {
	d       Data
	opt     Options
	fitN    int   // labelled rows the classifier is fitted on for the choices
	valRows []int // the validation rows, in order
	fitRows []int // and the rest
	// mirror is the labelled images mirrored (Options.Mirror), as the
	// first layer takes them; nil without mirrors.
	mirror dataset.Source
	logf   func(string, ...any)
}

func newEvaluator(d Data, opt Options, mirror dataset.Source, logf func(string, ...any)) *evaluator {
	e := &evaluator{d: d, opt: opt, fitN: len(d.Labels) - opt.Validation, mirror: mirror, logf: logf}
	if opt.StratifiedValidation && opt.Validation > 0 {
		e.fitRows, e.valRows = validationRows(d.Labels, d.Classes, opt.Validation)
	}
	if e.fitRows == nil { // the last Validation rows validate
		for i := range d.Labels {
			if i < e.fitN {
				e.fitRows = append(e.fitRows, i)
			} else {
				e.valRows = append(e.valRows, i)
			}
		}
	}
	return e
}

// validationRows splits the rows of labels class by class: from each class
// its last images, as many as its share of n (ClassShares), are validation
// rows; the others fit rows. Both lists are in row order.
func validationRows(labels []byte, classes, n int) (fit, val []int) {
	count := make([]int, classes)
	for _, l := range labels {
		count[l]++
	}
	take := ClassShares(labels, classes, n)
	seen := make([]int, classes)
	for i, l := range labels {
		if seen[l] >= count[l]-take[l] {
			val = append(val, i)
		} else {
			fit = append(fit, i)
		}
		seen[l]++
	}
	return fit, val
}

// ClassShares returns how many of n images each class of labels takes in
// proportion to its images, the largest remainders rounded up (the lower
// class on a tie): how a validation split, or -limit, cuts data that comes
// class by class.
func ClassShares(labels []byte, classes, n int) []int {
	count := make([]int, classes)
	for _, l := range labels {
		count[l]++
	}
	take := make([]int, classes)
	rem := make([]int, classes)
	left := n
	for c, k := range count {
		take[c], rem[c] = k*n/len(labels), k*n%len(labels)
		left -= take[c]
	}
	for ; left > 0; left-- {
		best := -1
		for c := range rem {
			if take[c] < count[c] && (best < 0 || rem[c] > rem[best]) {
				best = c
			}
		}
		take[best]++
		rem[best] = -1
	}
	return take
}

// grid is the values of C the validation chooses from: the grid with
// ChooseC, else the one C given.
func (e *evaluator) grid() []float64 {
	if e.opt.ChooseC && len(e.opt.CGrid) > 0 {
		return e.opt.CGrid
	}
	if e.opt.ChooseC {
		return classify.DefaultCGrid
	}
	return []float64{e.cFixed()}
}

func (e *evaluator) cFixed() float64 {
	if e.opt.C > 0 {
		return e.opt.C
	}
	return 1
}

// losses returns the classifiers validation chooses from.
func (e *evaluator) losses() []classify.Loss {
	if len(e.opt.Classifiers) == 0 {
		return []classify.Loss{classify.Softmax}
	}
	return e.opt.Classifiers
}

// validation is what validate chose: the loss and C that validate best, the
// accuracy of each C with that loss, and the best of each loss.
type validation struct {
	loss       classify.Loss
	c, acc     float64
	grid, accs []float64 // each C tried with loss, and its accuracy
	byLoss     []float64
	model      *classify.Model // the fit of c on the fitting rows: where the refit on all of them starts
}

// validate fits on the fitting rows of x (all labelled rows, d values
// each, then with mirrored their mirrors' rows) with each loss and each C
// of the grid and returns the pair that validates best on the validation
// rows (the earlier loss and the larger C on a tie), the first fit
// starting from the model from (nil: from zero); without a validation
// split, the first loss, the one C given and accuracy −1.
func (e *evaluator) validate(x []float32, mirrored bool, d int, from *classify.Model) (validation, error) {
	if e.opt.Validation == 0 {
		return validation{loss: e.losses()[0], c: e.cFixed(), acc: -1}, nil
	}
	best := validation{acc: -1}
	for _, loss := range e.losses() {
		ch, err := e.validateC(x, mirrored, d, loss, from)
		if err != nil {
			return validation{}, err
		}
		acc := ch.Best()
		best.byLoss = append(best.byLoss, acc)
		if acc > best.acc {
			best = validation{loss: loss, c: ch.C, acc: acc, grid: ch.Grid, accs: ch.Accuracy, byLoss: best.byLoss, model: ch.Model}
		}
	}
	if len(e.losses()) == 1 {
		best.byLoss = nil
	}
	return best, nil
}

// validateC fits on the fitting rows of x (with mirrored, and of their
// mirrors) with loss and each C of the grid (and past its edge,
// classify.ChooseC), the first starting from the model from, and returns
// the choice.
func (e *evaluator) validateC(x []float32, mirrored bool, d int, loss classify.Loss, from *classify.Model) (classify.Choice, error) {
	xf, yf := fitRows(x, mirrored, e.d.Labels, d, e.fitRows)
	xv, yv := classify.Rows(x, e.d.Labels, d, e.valRows)
	// Each fit takes minutes on large feature sets: say how each went.
	start := time.Now()
	report := func(c, acc float64, f *classify.Fit) {
		e.logf("  %s, C = %v: validation %.2f %% (%d iterations, %.1f s)\n", loss, c, 100*acc, f.Iterations, time.Since(start).Seconds())
		start = time.Now()
	}
	if len(e.grid()) == 1 && len(e.losses()) == 1 {
		report = nil
	}
	// xf is a copy: the search standardises it in place.
	return classify.ChooseCInPlace(xf, yf, xv, yv, d, e.d.Classes, e.grid(), classify.Settings{Loss: loss, Context: e.opt.Context, Start: from}, report)
}

// fitRows returns a copy of the rows idx of x, of the images of labels,
// and then, when mirrored, of the same images' mirrors (the rows after
// theirs), with their labels: the rows a fit takes.
func fitRows(x []float32, mirrored bool, labels []byte, d int, idx []int) ([]float32, []byte) {
	if !mirrored {
		return classify.Rows(x, labels, d, idx)
	}
	n := len(labels)
	xs := make([]float32, 0, 2*len(idx)*d)
	ys := make([]byte, 0, 2*len(idx))
	for _, rows := range [][]float32{x[:n*d], x[n*d:]} {
		for _, i := range idx {
			xs = append(xs, rows[i*d:(i+1)*d]...)
			ys = append(ys, labels[i])
		}
	}
	return xs, ys
}

// fit evaluates one feature set: C by validation, then the fit on every
// row of fs.train (standardising them in place when they are owned),
// scored on the training and the test rows. It returns the model and the
// labelled images' standardised rows, without their mirrors, for the
// label study.
func (e *evaluator) fit(fs featureSet) (*Evaluation, *classify.Model, []float32, error) {
	start := time.Now()
	var v validation
	if fs.validated != nil {
		v = *fs.validated
	} else {
		var err error
		if v, err = e.validate(fs.train, fs.mirrored, fs.d, fs.start); err != nil {
			return nil, nil, nil, fmt.Errorf("experiment: %s: %w", fs.name, err)
		}
	}
	c, valAcc := v.c, v.acc
	train, labels := fs.train, e.d.Labels
	if !fs.owned {
		train = slices.Clone(train)
	}
	if fs.mirrored {
		labels = slices.Concat(labels, labels)
	}
	// The features are standardised in place: one copy of them in memory.
	// The refit starts from the validated fit, which saw most of these rows.
	model, f, err := classify.TrainInPlace(train, labels, fs.d, e.d.Classes, classify.Settings{Loss: v.loss, C: c, Context: e.opt.Context, Start: v.model})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("experiment: %s: %w", fs.name, err)
	}
	train = train[:len(e.d.Labels)*fs.d] // the labelled images', without their mirrors
	trainAcc, _ := classify.Score(model.PredictStandardised(train), e.d.Labels, e.d.Classes)
	testAcc, conf := classify.Score(model.Predict(fs.test), e.d.TestLabels, e.d.Classes)
	ev := &Evaluation{Pooling: fs.name, Features: fs.d, Loss: v.loss, C: c, TrainAccuracy: trainAcc, TestAccuracy: testAcc, Confusion: conf, Classifier: f,
		ValidationByLoss: v.byLoss}
	if valAcc >= 0 {
		ev.ValidationAccuracy = &valAcc
		if e.opt.ChooseC {
			ev.CGrid, ev.ValidationByC = v.grid, v.accs
		}
		mirrors := ""
		if fs.mirrored {
			mirrors = " and their mirrors"
		}
		e.logf("%s on %d %s features: validation %.2f %% (C = %v, fitted on %d%s, validated on %d); refitted on all %d%s: train %.2f %%, test %.2f %% (%d iterations, %s, %.1f s)\n",
			v.loss, fs.d, fs.name, 100*valAcc, c, e.fitN, mirrors, e.opt.Validation, len(e.d.Labels), mirrors, 100*trainAcc, 100*testAcc, f.Iterations, f.Status, time.Since(start).Seconds())
	} else {
		e.logf("%s on %d %s features (C = %v, no validation split): train %.2f %%, test %.2f %% (%d iterations, %s, %.1f s)\n",
			v.loss, fs.d, fs.name, c, 100*trainAcc, 100*testAcc, f.Iterations, f.Status, time.Since(start).Seconds())
	}
	return ev, model, train, nil
}

// evaluation is the evaluation of one trained stack: the evaluator that
// fits, the label study it fills in set by set, and the metrics it writes.
type evaluation struct {
	*evaluator
	m       *Metrics
	counts  []int   // the label study's sizes, the whole set last
	subsets [][]int // the rows of each size
	study   []LabelPoint
	series  []viz.Series // labels.png, one curve per feature set
}

// evaluate pools the features of each pooling (of the top layer and, with
// several, of all layers together), fits the classifier on each (and on the
// pixels), runs the label-efficiency study and writes what was asked into
// m and opt.Out. The main feature set is the one that validates best. raw
// is d with its images as they are, for the pixels' classifier.
func evaluate(ctx context.Context, d, raw Data, opt Options, st *em.Stack, ops graph.Ops, batch int, curve *curveFeatures, m *Metrics, logf func(string, ...any)) error {
	var mirror dataset.Source
	if opt.Mirror {
		// Mirrored before the whitening: a whitened patch's channels are
		// its pixels, which a mirror of the positions would not reverse.
		mirror = dataset.Mirror(raw.Labelled)
		if wh := st.Whitening; wh != nil {
			ws, err := wh.Source(mirror, ops, batch)
			if err != nil {
				return err
			}
			defer ws.Close()
			mirror = ws
		}
		mirror = stoppableSource{mirror, ctx}
	}
	e := &evaluation{evaluator: newEvaluator(d, opt, mirror, logf), m: m}
	e.counts = labelCounts(opt.LabelCounts, len(d.Labels))
	e.subsets = balancedSubsets(d.Labels, d.Classes, e.counts)
	for _, n := range e.counts {
		e.study = append(e.study, LabelPoint{Labels: n})
	}
	if opt.Features {
		if err := saveLabels(opt.Out, d); err != nil {
			return err
		}
	}
	if err := e.evaluateFeatureSets(ctx, st, ops, featureBatchFor(st, batch), curve); err != nil {
		return err
	}
	e.chooseMain()
	if opt.Pixels {
		if err := e.pixels(ctx, raw); err != nil {
			return err
		}
	}
	m.Labels = e.study
	if len(e.series) > 0 {
		how := fmt.Sprintf("C = %v", e.cFixed())
		if opt.ChooseC {
			how = "C by validation inside each subset"
		}
		if err := viz.SaveLabels(filepath.Join(opt.Out, rundir.LabelsFigure), fmt.Sprintf("%s: test accuracy against labelled training images (%s)", d.Name, how), e.series...); err != nil {
			return err
		}
	}
	return nil
}

// evaluateFeatureSets computes and evaluates every feature set of the run
// (FeatureSets). A set whose features are the last ones of a later set's
// (in a stack, the top layer's under a pooling, and the same pooling over
// every layer) is cut from that set's, computed once and kept until it is
// fitted.
func (e *evaluation) evaluateFeatureSets(ctx context.Context, st *em.Stack, ops graph.Ops, batch int, curve *curveFeatures) error {
	sets, err := FeatureSets(e.opt.Pools, e.opt.LayerPools, len(st.Layers))
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	computed := map[string]featureSet{}
	for i, set := range sets {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start := time.Now()
		fs, ok := computed[set.Name]
		delete(computed, set.Name)
		if !ok {
			whole := set
			if j := slices.IndexFunc(sets[i+1:], func(later FeatureSet) bool { return isTail(set.Layers, later.Layers) }); j >= 0 {
				whole = sets[i+1+j]
			}
			d, n := featuresLen(st, whole.Layers), len(e.d.Labels)
			var train []float32
			if e.mirror != nil {
				// The mirrors' rows after the images', in one array.
				train = make([]float32, 2*n*d)
			}
			var validated *validation
			var from *classify.Model
			if curve != nil && slices.Equal(curve.layers, whole.Layers) {
				// The epoch curve computed and validated these (without
				// mirrors: a fit with them validates again, from the
				// curve's).
				if e.mirror != nil {
					copy(train, curve.train)
					from = curve.v.model
				} else {
					train, validated = curve.train, &curve.v
				}
				curve = nil
			} else {
				dst := train
				if dst != nil {
					dst = dst[:n*d]
				}
				rows, err := em.StackFeaturesInto(dst, watched(e.d.Labelled, e.opt, "features ("+whole.Name+") of the training images"), st, whole.Layers, ops, batch)
				if err != nil {
					return err
				}
				if train == nil {
					train = rows
				}
			}
			if e.mirror != nil {
				if _, err = em.StackFeaturesInto(train[n*d:], watched(e.mirror, e.opt, "features ("+whole.Name+") of the training images' mirrors"), st, whole.Layers, ops, batch); err != nil {
					return err
				}
			}
			test, err := em.StackFeatures(watched(e.d.Test, e.opt, "features ("+whole.Name+") of the test images"), st, whole.Layers, ops, batch)
			if err != nil {
				return err
			}
			fs = featureSet{name: set.Name, train: train, test: test, mirrored: e.mirror != nil, d: d, owned: true}
			if whole.Name == set.Name {
				fs.validated, fs.start = validated, from
			}
			if whole.Name != set.Name {
				kept := fs // the whole set, fitted when its turn comes
				kept.name = whole.Name
				computed[whole.Name] = kept
				tail := featuresLen(st, set.Layers)
				fs = featureSet{name: set.Name, train: lastColumns(train, d, tail), test: lastColumns(test, d, tail), mirrored: fs.mirrored, d: tail, owned: true}
			}
		}
		took := time.Since(start).Seconds()
		e.m.FeaturesSeconds += took
		e.logf("features (%s, %d per image) of %d + %d images: %.1f s\n", fs.name, fs.d, len(e.d.Labels), len(e.d.TestLabels), took)
		if e.opt.Features {
			if err := saveFeatures(e.opt.Out, fs, len(e.d.Labels)); err != nil {
				return err
			}
		}
		ev, err := e.fitAndStudy(ctx, fs)
		if err != nil {
			return err
		}
		e.m.Evaluations = append(e.m.Evaluations, *ev)
	}
	return nil
}

// featuresLen returns the features of an image under st that features
// makes, each layer's pooled side by side.
func featuresLen(st *em.Stack, features []estep.LayerFeatures) int {
	d := 0
	for _, f := range features {
		d += f.Pooling.Features(st.Layers[f.Layer].Config.Kernels)
	}
	return d
}

// isTail reports whether the features part lists are the last ones of
// whole's, in the same order, and fewer.
func isTail(part, whole []estep.LayerFeatures) bool {
	return len(part) < len(whole) && slices.Equal(part, whole[len(whole)-len(part):])
}

// fitAndStudy evaluates a feature set and runs the label study on it.
func (e *evaluation) fitAndStudy(ctx context.Context, fs featureSet) (*Evaluation, error) {
	start := time.Now()
	defer func() { e.m.ClassifierSeconds += time.Since(start).Seconds() }()
	ev, model, train, err := e.fit(fs)
	if err != nil {
		return nil, err
	}
	if len(e.subsets) == 0 {
		return ev, nil
	}
	accs, cs, err := e.labelStudy(ctx, train, fs.test, fs.d, model, ev.Loss, e.subsets)
	if err != nil {
		return nil, fmt.Errorf("experiment: %s: %w", fs.name, err)
	}
	// The whole set: the fit above.
	accs[len(accs)-1], cs[len(cs)-1] = ev.TestAccuracy, ev.C
	e.series = append(e.series, viz.Series{Name: fs.name, Labels: e.counts, Accuracy: accs})
	for i := range e.counts {
		e.study[i].Fits = append(e.study[i].Fits, LabelFit{Pooling: fs.name, TestAccuracy: accs[i], C: cs[i]})
	}
	return ev, nil
}

// chooseMain makes the feature set that validates best the run's main one,
// and prints its confusion matrix.
func (e *evaluation) chooseMain() {
	m := e.m
	main := m.Evaluations[mainEvaluation(m.Evaluations)]
	m.Pooling, m.TrainAccuracy, m.TestAccuracy, m.ValidationAccuracy, m.Confusion, m.Classifier =
		main.Pooling, &main.TrainAccuracy, &main.TestAccuracy, main.ValidationAccuracy, main.Confusion, main.Classifier
	if main.ValidationAccuracy != nil {
		e.logf("main feature set, by validation accuracy: %s (validation %.2f %%, test %.2f %%)\n", main.Pooling, 100**main.ValidationAccuracy, 100*main.TestAccuracy)
	}
	e.logf("confusion matrix of the %s features on the test set (rows: true class, columns: predicted):\n", main.Pooling)
	for i, row := range main.Confusion {
		e.logf("  %d:", i)
		for _, v := range row {
			e.logf(" %5d", v)
		}
		e.logf("\n")
	}
}

// pixels evaluates the classifier on the raw pixels of raw.
func (e *evaluation) pixels(ctx context.Context, raw Data) error {
	train, err := pixels(raw.Labelled)
	if err != nil {
		return err
	}
	test, err := pixels(raw.Test)
	if err != nil {
		return err
	}
	_, c, h, w := raw.Test.Shape()
	ev, err := e.fitAndStudy(ctx, featureSet{name: "pixels", train: train, test: test, d: c * h * w})
	if err != nil {
		return err
	}
	e.m.PixelTrainAccuracy, e.m.PixelTestAccuracy, e.m.PixelValidationAccuracy, e.m.PixelClassifier = &ev.TrainAccuracy, &ev.TestAccuracy, ev.ValidationAccuracy, ev.Classifier
	return nil
}

// mainEvaluation returns the index of the evaluation with the best
// validation accuracy (the first on a tie), or 0 without validation.
func mainEvaluation(evs []Evaluation) int {
	best := 0
	for i, ev := range evs {
		if ev.ValidationAccuracy != nil && *ev.ValidationAccuracy > *evs[best].ValidationAccuracy {
			best = i
		}
	}
	return best
}

// lastColumns returns a copy of the last k of the d columns of each row of x.
func lastColumns(x []float32, d, k int) []float32 {
	n := len(x) / d
	out := make([]float32, 0, n*k)
	for i := range n {
		out = append(out, x[(i+1)*d-k:(i+1)*d]...)
	}
	return out
}

// labelStudy returns the test accuracy, and the C, of the classifier
// fitted on each subset of the labelled rows (all but the last subset, the
// whole set, whose fit the caller has; its entries are left 0). Each fit
// sees the labels of its subset and no other: with ChooseC its C is chosen
// by validation on a fifth of the subset, else it is the C given. train
// holds the rows as model standardised them (TrainInPlace: no label enters
// the standardisation), so the test rows are standardised the same way.
func (e *evaluator) labelStudy(ctx context.Context, train, test []float32, dim int, model *classify.Model, loss classify.Loss, subsets [][]int) (accs, cs []float64, err error) {
	testStd := make([]float32, len(test))
	model.Standardise(testStd, test)
	accs, cs = make([]float64, len(subsets)), make([]float64, len(subsets))
	for i, sub := range subsets[:len(subsets)-1] {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		c := e.cFixed()
		var start *classify.Model
		if e.opt.ChooseC {
			fit, val := holdOut(sub, 5)
			xf, yf := classify.Rows(train, e.d.Labels, dim, fit)
			xv, yv := classify.Rows(train, e.d.Labels, dim, val)
			ch, err := classify.ChooseC(xf, yf, xv, yv, dim, e.d.Classes, e.grid(), classify.Settings{Loss: loss, Context: e.opt.Context})
			if err != nil {
				return nil, nil, fmt.Errorf("on %d labels: %w", len(sub), err)
			}
			c, start = ch.C, ch.Model
		}
		x, y := classify.Rows(train, e.d.Labels, dim, sub)
		m, _, err := classify.TrainInPlace(x, y, dim, e.d.Classes, classify.Settings{Loss: loss, C: c, Context: e.opt.Context, Start: start})
		if err != nil {
			return nil, nil, fmt.Errorf("on %d labels: %w", len(sub), err)
		}
		accs[i], _ = classify.Score(m.Predict(testStd), e.d.TestLabels, e.d.Classes)
		cs[i] = c
	}
	return accs, cs, nil
}

// holdOut splits the rows sub into rows to fit on and every k-th row of a
// seeded permutation of them to validate on (at least one of each while
// sub has two rows). The split depends on sub alone.
func holdOut(sub []int, k int) (fit, val []int) {
	perm := rand.New(rand.NewPCG(uint64(len(sub)), 11)).Perm(len(sub))
	for j, p := range perm {
		if j%k == k-1 || len(sub) < k && j == len(sub)-1 && len(val) == 0 {
			val = append(val, sub[p])
		} else {
			fit = append(fit, sub[p])
		}
	}
	slices.Sort(fit)
	slices.Sort(val)
	return fit, val
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

// pixels returns every image of src, without a copy when src is in memory.
func pixels(src dataset.Source) ([]float32, error) {
	if im, ok := src.(*dataset.Images); ok {
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
// × features): of the n labelled images (not their mirrors) and of the
// test images.
func saveFeatures(dir string, fs featureSet, n int) error {
	for _, f := range []struct {
		name string
		data []float32
	}{{"train", fs.train[:n*fs.d]}, {"test", fs.test}} {
		if err := em.SaveNpy(filepath.Join(dir, rundir.FeaturesFile(fs.name, f.name)), f.data, len(f.data)/fs.d, fs.d); err != nil {
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
		path := filepath.Join(dir, rundir.LabelsFile(l.name))
		if err := atomicfile.Write(path, func(w io.Writer) error { return npyio.Write(w, l.labels) }); err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
	}
	return nil
}
