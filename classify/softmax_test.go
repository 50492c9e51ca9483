package classify_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/classify"
)

// TestKnownOptimum fits two points x = ±1 of classes 1 and 0. By symmetry
// b = 0 and W = (−a/2, a/2) where a, the logistic weight, minimises
// (1/2)·2·log(1+e^{−a}) + (a²/2)/(2·C·2): solved here by bisection on its
// derivative, independently of the package.
func TestKnownOptimum(t *testing.T) {
	for _, c := range []float64{0.1, 1, 10} {
		x := []float32{1, -1}
		y := []byte{1, 0}
		m, fit, err := classify.Train(x, y, 1, 2, classify.Settings{C: c, Exact: true})
		if err != nil {
			t.Fatal(err)
		}
		// f(a) = log(1+e^{−a}) + a²/(8C);  f'(a) = −1/(1+e^{a}) + a/(4C).
		lo, hi := 0.0, 100.0
		for i := 0; i < 200; i++ {
			mid := (lo + hi) / 2
			if -1/(1+math.Exp(mid))+mid/(4*c) < 0 {
				lo = mid
			} else {
				hi = mid
			}
		}
		a := (lo + hi) / 2
		// Standardisation of ±1 is the identity (mean 0, std 1).
		got := m.W[1] - m.W[0]
		if math.Abs(got-a) > 1e-6 || math.Abs(m.W[0]+m.W[1]) > 1e-6 || math.Abs(m.B[0]-m.B[1]) > 1e-6 {
			t.Errorf("C=%v: W = %v, b = %v; want W = ±%v/2, b equal (fit %+v)", c, m.W, m.B, a, fit)
		}
		if !fit.Converged {
			t.Errorf("C=%v: not converged: %+v", c, fit)
		}
	}
}

// TestSeparable fits three well-separated Gaussian clusters in 5-D: every
// training point and fresh test point must be classified right.
func TestSeparable(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const d, classes = 5, 3
	centres := [classes][d]float64{{6, 0, 0, 0, 0}, {0, 6, 0, 0, 0}, {0, 0, 6, 0, 0}}
	sample := func(n int) ([]float32, []byte) {
		x := make([]float32, 0, n*d)
		y := make([]byte, n)
		for i := range y {
			y[i] = byte(rng.IntN(classes))
			for j := 0; j < d; j++ {
				x = append(x, float32(centres[y[i]][j]+0.5*rng.NormFloat64()+10))
			}
		}
		return x, y
	}
	x, y := sample(300)
	m, fit, err := classify.Train(x, y, d, classes, classify.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if !fit.Converged {
		t.Errorf("not converged: %+v", fit)
	}
	if acc, _ := classify.Score(m.Predict(x), y, classes); acc != 1 {
		t.Errorf("train accuracy %v, want 1", acc)
	}
	tx, ty := sample(300)
	acc, conf := classify.Score(m.Predict(tx), ty, classes)
	if acc != 1 {
		t.Errorf("test accuracy %v, want 1; confusion %v", acc, conf)
	}
}

func TestTrainRejectsBadInput(t *testing.T) {
	if _, _, err := classify.Train([]float32{1, float32(math.NaN())}, []byte{0, 1}, 1, 2, classify.Settings{}); err == nil {
		t.Error("NaN feature accepted")
	}
	if _, _, err := classify.Train([]float32{1, 2}, []byte{0, 5}, 1, 2, classify.Settings{}); err == nil {
		t.Error("label 5 of 2 classes accepted")
	}
}

// TestTrainInPlace fits the same data with Train and TrainInPlace: the
// models must be the same, and the rows TrainInPlace leaves behind must
// predict as the raw rows do through the model's standardisation.
func TestTrainInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	const n, d, k = 500, 7, 3
	x := make([]float32, n*d)
	y := make([]byte, n)
	for i := range y {
		y[i] = byte(rng.IntN(k))
		for j := 0; j < d; j++ {
			v := rng.NormFloat64() + 10
			if int(y[i]) == j%k {
				v += 3
			}
			x[i*d+j] = float32(v)
		}
	}
	raw := slices.Clone(x)
	m1, _, err := classify.Train(x, y, d, k, classify.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, raw) {
		t.Fatal("Train changed its input")
	}
	m2, _, err := classify.TrainInPlace(x, y, d, k, classify.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m1.W, m2.W) || !slices.Equal(m1.B, m2.B) {
		t.Error("Train and TrainInPlace fitted different models")
	}
	if slices.Equal(x, raw) {
		t.Fatal("TrainInPlace left its input raw")
	}
	if !slices.Equal(m2.PredictStandardised(x), m2.Predict(raw)) {
		t.Error("predictions from the standardised rows differ from those of the raw rows")
	}
}

// TestChooseC plants data where a penalty pays: few rows, five features
// that tell the classes apart and many of noise. Each C's validation
// accuracy must be that of a fit made directly on the fitting rows and
// scored on the validation rows, and reported after its fit; the choice
// must be the best of them, and a penalty must beat almost none.
func TestChooseC(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	const n, d, k = 300, 400, 2
	x := make([]float32, n*d)
	y := make([]byte, n)
	for i := range y {
		y[i] = byte(rng.IntN(k))
		for j := 0; j < d; j++ {
			v := rng.NormFloat64()
			if j < 5 {
				v += 0.6 * (2*float64(y[i]) - 1)
			}
			x[i*d+j] = float32(v)
		}
	}
	const cut = 200
	xf, yf, xv, yv := x[:cut*d], y[:cut], x[cut*d:], y[cut:]
	raw := slices.Clone(x)
	grid := []float64{1000, 1, 0.01}
	var reported, reportedAccs []float64
	ch, err := classify.ChooseCReporting(xf, yf, xv, yv, d, k, grid, classify.Settings{}, func(c, acc float64, _ *classify.Fit) {
		reported, reportedAccs = append(reported, c), append(reportedAccs, acc)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("C = %v, validation accuracies %v of %v", ch.C, ch.Accuracy, ch.Grid)
	if !slices.Equal(reported, ch.Grid) || !slices.Equal(reportedAccs, ch.Accuracy) || !slices.Equal(ch.Grid[:len(grid)], grid) {
		t.Errorf("reported C %v with accuracies %v; want the grid %v and what followed, %v, once each, in order, with %v", reported, reportedAccs, grid, ch.Grid, ch.Accuracy)
	}
	if ch2, err := classify.ChooseC(xf, yf, xv, yv, d, k, grid, classify.Settings{}); err != nil || ch2.C != ch.C || !slices.Equal(ch2.Accuracy, ch.Accuracy) {
		t.Errorf("ChooseC: %+v, %v; want ChooseCReporting's %+v", ch2, err, ch)
	}
	if !slices.Equal(x, raw) {
		t.Error("ChooseC changed its input")
	}
	// In place: the same choice, and the fitting rows left as TrainInPlace
	// leaves them.
	own := slices.Clone(xf)
	if ch3, err := classify.ChooseCInPlace(own, yf, xv, yv, d, k, grid, classify.Settings{}, nil); err != nil || ch3.C != ch.C || !slices.Equal(ch3.Accuracy, ch.Accuracy) {
		t.Errorf("ChooseCInPlace: %+v, %v; want ChooseCReporting's %+v", ch3, err, ch)
	}
	std := slices.Clone(xf)
	if _, _, err := classify.TrainInPlace(std, yf, d, k, classify.Settings{}); err != nil || !slices.Equal(own, std) {
		t.Errorf("ChooseCInPlace left its rows other than standardised (%v)", err)
	}
	var want []float64
	for _, ci := range ch.Grid {
		m, _, err := classify.Train(xf, yf, d, k, classify.Settings{C: ci})
		if err != nil {
			t.Fatal(err)
		}
		acc, _ := classify.Score(m.Predict(xv), yv, k)
		want = append(want, acc)
	}
	if !slices.Equal(ch.Accuracy, want) {
		t.Errorf("validation accuracies %v, direct fits %v", ch.Accuracy, want)
	}
	if got := ch.Best(); got != slices.Max(want) {
		t.Errorf("chose C = %v with accuracy %v; the best of %v is %v", ch.C, got, want, slices.Max(want))
	}
	if ch.Accuracy[2] <= ch.Accuracy[0] {
		t.Errorf("validation accuracies %v: C = 0.01 should beat C = 1000 on noise features", ch.Accuracy)
	}
	// Past the edge: C = 0.01 validates above C = 1 (above), so the grid
	// goes on as it went (×0.01 a step: 0.0001, …) and stops at a C that
	// validates no better, or after four.
	edge := []float64{1, 0.01}
	ech, err := classify.ChooseC(xf, yf, xv, yv, d, k, edge, classify.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ech.Grid) < 3 || ech.Grid[2] != 0.0001 {
		t.Fatalf("grid %v with accuracies %v: want it extended past C = 0.01 to 0.0001", ech.Grid, ech.Accuracy)
	}
	last := len(ech.Grid) - 1
	if ech.C == ech.Grid[last] && last < len(edge)+4 || ech.C != ech.Grid[last] && ech.Accuracy[last] > ech.Best() {
		t.Errorf("grid %v, accuracies %v, chose %v: want it extended until a C validated no better (or four more)", ech.Grid, ech.Accuracy, ech.C)
	}
	if _, err := classify.ChooseC(xf, yf, nil, nil, d, k, grid, classify.Settings{}); err == nil {
		t.Error("no validation rows: want an error")
	}
}
