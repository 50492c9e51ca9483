package classify

import (
	"cmp"
	"fmt"
	"slices"
)

// DefaultCGrid is the grid ChooseC searches by default: the inverse L2
// strengths from scikit-learn's default C = 1 down to 0.01.
var DefaultCGrid = []float64{1, 0.3, 0.1, 0.03, 0.01}

// ChooseC picks the inverse L2 strength C from grid by validation: it fits
// on the rows xFit (labels yFit) with each C of grid (the other settings
// from s) and returns the C whose fit classifies the validation rows xVal
// (labels yVal) best, on a tie the larger C (the weaker penalty), with the
// validation accuracy of each C of grid. Neither xFit nor xVal is
// modified; no other row is looked at, so a test set kept out of both
// cannot leak into the choice.
//
// The fits run along the regularisation path, from the strongest penalty
// to the weakest, each starting at the optimum of the one before (the
// standardisation is the same for every C): the optima are those of fits
// from zero, within the gradient tolerance, at a fraction of the
// iterations.
func ChooseC(xFit []float32, yFit []byte, xVal []float32, yVal []byte, d, classes int, grid []float64, s Settings) (best float64, accuracy []float64, err error) {
	if d < 1 || len(xFit) != len(yFit)*d || len(xVal) != len(yVal)*d || len(yFit) == 0 || len(yVal) == 0 || len(grid) == 0 {
		return 0, nil, fmt.Errorf("classify: choose C: %d fitting values for %d rows and %d validation values for %d rows of %d, %d values of C",
			len(xFit), len(yFit), len(xVal), len(yVal), d, len(grid))
	}
	for _, c := range grid {
		if !(c > 0) {
			return 0, nil, fmt.Errorf("classify: choose C: C = %v is not positive", c)
		}
	}
	// The first fit checks the rows and labels and standardises a copy of
	// the fitting rows; the others reuse both.
	order := make([]int, len(grid))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(grid[i], grid[j]) })
	x := slices.Clone(xFit)
	s.C = grid[order[0]]
	m, _, err := TrainInPlace(x, yFit, d, classes, s)
	if err != nil {
		return 0, nil, fmt.Errorf("classify: choose C: C = %v: %w", s.C, err)
	}
	xv := make([]float32, len(xVal))
	m.Standardise(xv, xVal)
	accuracy = make([]float64, len(grid))
	for n, i := range order {
		if n > 0 {
			start := append(slices.Clone(m.W), m.B...)
			m = &Model{Classes: classes, Features: d, Mean: m.Mean, Scale: m.Scale}
			s.C = grid[i]
			if s, err = s.withDefaults(); err != nil {
				return 0, nil, fmt.Errorf("classify: choose C: %w", err)
			}
			if _, err := m.solve(x, yFit, s, start); err != nil {
				return 0, nil, fmt.Errorf("classify: choose C: C = %v: %w", s.C, err)
			}
		}
		accuracy[i], _ = Score(m.PredictStandardised(xv), yVal, classes)
	}
	bestAcc := -1.0
	for i, c := range grid {
		if acc := accuracy[i]; acc > bestAcc || acc == bestAcc && c > best {
			best, bestAcc = c, acc
		}
	}
	return best, accuracy, nil
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

// Accuracy returns the entry of accuracy (ChooseC's) that belongs to c in
// grid, or −1 if c is not in grid.
func Accuracy(grid, accuracy []float64, c float64) float64 {
	if i := slices.Index(grid, c); i >= 0 && i < len(accuracy) {
		return accuracy[i]
	}
	return -1
}
