package experiment

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/classify"
)

// TestBalancedSubsets checks that each subset is as balanced as the classes
// allow, that each holds the smaller ones, and that the last is the whole
// set.
func TestBalancedSubsets(t *testing.T) {
	labels := make([]byte, 103)
	for i := range labels {
		labels[i] = byte(i % 3)
		if i > 90 {
			labels[i] = 2 // class 2 has more images
		}
	}
	counts := labelCounts([]int{30, 7, 300, 60}, len(labels))
	if !slices.Equal(counts, []int{7, 30, 60, 103}) {
		t.Fatalf("counts %v, want [7 30 60 103]", counts)
	}
	subs := balancedSubsets(labels, 3, counts)
	for i, sub := range subs {
		if len(sub) != counts[i] {
			t.Errorf("subset %d has %d images, want %d", i, len(sub), counts[i])
		}
		per := make([]int, 3)
		for _, j := range sub {
			per[labels[j]]++
		}
		if i < len(subs)-1 && slices.Max(per)-slices.Min(per) > 1 {
			t.Errorf("subset of %d: classes %v, want within one of each other", counts[i], per)
		}
		if i > 0 {
			for _, j := range subs[i-1] {
				if !slices.Contains(sub, j) {
					t.Errorf("subset of %d lacks image %d of the subset of %d", counts[i], j, counts[i-1])
					break
				}
			}
		}
	}
}

// TestLabelStudy compares the study's accuracy on a subset with a fit on
// the raw rows of that subset, scored on the raw test rows: the study
// works on rows the main fit standardised, and must come to the same. With
// C chosen inside each subset, the study must not change when the labels
// outside a subset do.
func TestLabelStudy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const d, classes = 6, 3
	sample := func(n int) ([]float32, []byte) {
		x, y := make([]float32, n*d), make([]byte, n)
		for i := range y {
			y[i] = byte(rng.IntN(classes))
			for j := 0; j < d; j++ {
				v := 50 + 5*rng.NormFloat64()
				if j%classes == int(y[i]) {
					v += 4
				}
				x[i*d+j] = float32(v)
			}
		}
		return x, y
	}
	train, labels := sample(600)
	test, testLabels := sample(300)
	data := Data{Labels: labels, TestLabels: testLabels, Classes: classes}
	subs := balancedSubsets(labels, classes, labelCounts([]int{30, 90}, len(labels)))
	std := slices.Clone(train)
	model, _, err := classify.TrainInPlace(std, labels, d, classes, classify.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEvaluator(data, Options{Validation: 100}, nil, func(string, ...any) {})
	accs, cs, err := e.labelStudy(context.Background(), std, test, d, model, classify.Softmax, subs)
	if err != nil {
		t.Fatal(err)
	}
	for i, sub := range subs[:2] {
		x, y := classify.Rows(train, labels, d, sub)
		direct, _, err := classify.Train(x, y, d, classes, classify.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := classify.Score(direct.Predict(test), testLabels, classes)
		// float32 standardisation twice over: a test row near a boundary
		// may flip.
		if diff := accs[i] - want; diff > 2.0/300 || diff < -2.0/300 || cs[i] != 1 {
			t.Errorf("%d labels: study %.4f with C = %v, direct fit %.4f with C = 1", len(sub), accs[i], cs[i], want)
		}
	}

	// C by validation inside each subset: relabel every image outside the
	// 90-image subset at random; the study of both subsets stays the same.
	e.opt.ChooseC = true
	accs, cs, err = e.labelStudy(context.Background(), std, test, d, model, classify.Softmax, subs)
	if err != nil {
		t.Fatal(err)
	}
	e.d.Labels = slices.Clone(labels)
	changed := 0
	for i := range e.d.Labels {
		if !slices.Contains(subs[1], i) {
			e.d.Labels[i] = byte(rng.IntN(classes))
			changed++
		}
	}
	accs2, cs2, err := e.labelStudy(context.Background(), std, test, d, model, classify.Softmax, subs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(accs[:2], accs2[:2]) || !slices.Equal(cs[:2], cs2[:2]) {
		t.Errorf("%d labels outside the subsets changed: study %v (C %v), before %v (C %v)", changed, accs2[:2], cs2[:2], accs[:2], cs[:2])
	}
	for i, c := range cs[:2] {
		if !slices.Contains(classify.DefaultCGrid, c) {
			t.Errorf("%d labels: C = %v, not of the grid", len(subs[i]), c)
		}
	}
}

// TestHoldOut checks the split of a subset: disjoint, covering, a fifth
// held out, and the same for the same subset.
func TestHoldOut(t *testing.T) {
	for _, n := range []int{2, 4, 5, 23, 100} {
		sub := make([]int, n)
		for i := range sub {
			sub[i] = 3*i + 1
		}
		fit, val := holdOut(sub, 5)
		all := append(slices.Clone(fit), val...)
		slices.Sort(all)
		if !slices.Equal(all, sub) || len(fit) == 0 || len(val) == 0 || len(val) > max(1, n/5) {
			t.Errorf("%d rows: fit %v, validate %v", n, fit, val)
		}
		fit2, val2 := holdOut(slices.Clone(sub), 5)
		if !slices.Equal(fit, fit2) || !slices.Equal(val, val2) {
			t.Errorf("%d rows: two splits differ", n)
		}
	}
}
