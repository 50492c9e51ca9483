package classify

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// DefaultCGrid is the grid ChooseC searches by default: the inverse L2
// strengths from scikit-learn's default C = 1 down to 0.01.
var DefaultCGrid = []float64{1, 0.3, 0.1, 0.03, 0.01}

// A Choice is what ChooseC did: each C it fitted, in order, with the
// validation accuracy of its fit, and the C that validated best.
type Choice struct {
	C        float64
	Grid     []float64 // the grid, then any C past its edge
	Accuracy []float64 // of each C of Grid
	// Model is the fit of the chosen C: where a refit of the same
	// features on more rows can start (Settings.Start).
	Model *Model `json:"-"`
}

// Best returns the validation accuracy of the chosen C.
func (ch Choice) Best() float64 {
	if i := slices.Index(ch.Grid, ch.C); i >= 0 {
		return ch.Accuracy[i]
	}
	return -1
}

// maxExtend is how many values of C ChooseC tries past an edge of its grid.
const maxExtend = 4

// ChooseC picks the inverse L2 strength C from grid (decreasing) by
// validation: it fits on the rows xFit (labels yFit) with each C of grid
// (the other settings from s) and chooses the C whose fit classifies the
// validation rows xVal (labels yVal) best, on a tie the larger C (the
// weaker penalty). While the best C is the grid's smallest (or largest)
// and validates strictly better than the one beside it, it goes on past
// that edge as the grid went, up to four more values, until a C validates
// no better: a choice at the grid's edge is no choice. Each fit starts from
// the fit of the nearest C already made (s.Start, if set, starts the
// first), which saves iterations, not accuracy: every fit goes on to the
// same gradient tolerance. Neither xFit nor xVal is modified; no other row
// is looked at, so a test set kept out of both cannot leak into the
// choice.
func ChooseC(xFit []float32, yFit []byte, xVal []float32, yVal []byte, d, classes int, grid []float64, s Settings) (Choice, error) {
	return ChooseCReporting(xFit, yFit, xVal, yVal, d, classes, grid, s, nil)
}

// ChooseCReporting is ChooseC that calls report, when it is not nil, after
// each fit with its C, validation accuracy and how the fit ended: progress
// for searches whose fits take minutes each.
func ChooseCReporting(xFit []float32, yFit []byte, xVal []float32, yVal []byte, d, classes int, grid []float64, s Settings, report func(c, accuracy float64, fit *Fit)) (Choice, error) {
	return chooseC(slices.Clone(xFit), yFit, xVal, yVal, d, classes, grid, s, report)
}

// ChooseCInPlace is ChooseCReporting without the copy of the fitting rows:
// it standardises xFit in place (as TrainInPlace does), which halves the
// memory a search takes.
func ChooseCInPlace(xFit []float32, yFit []byte, xVal []float32, yVal []byte, d, classes int, grid []float64, s Settings, report func(c, accuracy float64, fit *Fit)) (Choice, error) {
	return chooseC(xFit, yFit, xVal, yVal, d, classes, grid, s, report)
}

// chooseC is ChooseCInPlace.
func chooseC(xFit []float32, yFit []byte, xVal []float32, yVal []byte, d, classes int, grid []float64, s Settings, report func(c, accuracy float64, fit *Fit)) (Choice, error) {
	if d < 1 || len(xFit) != len(yFit)*d || len(xVal) != len(yVal)*d || len(yFit) == 0 || len(yVal) == 0 || len(grid) == 0 {
		return Choice{}, fmt.Errorf("classify: choose C: %d fitting values for %d rows and %d validation values for %d rows of %d, %d values of C",
			len(xFit), len(yFit), len(xVal), len(yVal), d, len(grid))
	}
	// Every C fits the same rows: standardised once.
	base, err := standardiseInPlace(xFit, yFit, d, classes)
	if err != nil {
		return Choice{}, fmt.Errorf("classify: choose C: %w", err)
	}
	var ch Choice
	var models []*Model // of each C of ch.Grid
	bestAcc := -1.0
	try := func(c float64) error {
		s.C = c
		if len(models) > 0 {
			s.Start = models[nearest(ch.Grid, c)]
		}
		m, fit, err := base.fit(xFit, yFit, s)
		if err != nil {
			return fmt.Errorf("classify: choose C: C = %v: %w", c, err)
		}
		acc, _ := Score(m.Predict(xVal), yVal, classes)
		ch.Grid, ch.Accuracy, models = append(ch.Grid, c), append(ch.Accuracy, acc), append(models, m)
		if report != nil {
			report(c, acc, fit)
		}
		if acc > bestAcc || acc == bestAcc && c > ch.C {
			ch.C, ch.Model, bestAcc = c, m, acc
		}
		return nil
	}
	for _, c := range grid {
		if err := try(c); err != nil {
			return Choice{}, err
		}
	}
	// Past an edge that validates strictly better than the C beside it, the
	// grid goes on as it went: each value the one a step (or, with three
	// values or more, two steps) back times the grid's ratio over that
	// step, to two significant digits (0.003, 0.001, … after 0.03, 0.01).
	accuracy := func(c float64) float64 { return ch.Accuracy[slices.Index(ch.Grid, c)] }
	reversed := slices.Clone(grid)
	slices.Reverse(reversed)
	for _, g := range [][]float64{slices.Clone(grid), reversed} {
		step := min(2, len(g)-1)
		for n := 0; step > 0 && ch.C == g[len(g)-1] && accuracy(g[len(g)-1]) > accuracy(g[len(g)-2]) && n < maxExtend; n++ {
			at := len(g) - 1
			c := g[at-step+1] * g[at] / g[at-step]
			c, _ = strconv.ParseFloat(strconv.FormatFloat(c, 'g', 2, 64), 64)
			g = append(g, c)
			if err := try(c); err != nil {
				return Choice{}, err
			}
		}
	}
	return ch, nil
}

// nearest returns the index of the C of grid nearest c on a log scale.
func nearest(grid []float64, c float64) int {
	best := 0
	for i, g := range grid {
		if math.Abs(math.Log(g/c)) < math.Abs(math.Log(grid[best]/c)) {
			best = i
		}
	}
	return best
}

// Rows returns the rows idx of x (rows of d values) and their labels, in
// the order of idx.
func Rows(x []float32, labels []byte, d int, idx []int) ([]float32, []byte) {
	xs := make([]float32, 0, len(idx)*d)
	ys := make([]byte, len(idx))
	for j, i := range idx {
		xs = append(xs, x[i*d:(i+1)*d]...)
		ys[j] = labels[i]
	}
	return xs, ys
}
