package classify

import (
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
func ChooseC(xFit []float32, yFit []byte, xVal []float32, yVal []byte, d, classes int, grid []float64, s Settings) (best float64, accuracy []float64, err error) {
	return ChooseCReporting(xFit, yFit, xVal, yVal, d, classes, grid, s, nil)
}

// ChooseCReporting is ChooseC that calls report, when it is not nil, after
// each fit with its C and validation accuracy: progress for searches whose
// fits take minutes each.
func ChooseCReporting(xFit []float32, yFit []byte, xVal []float32, yVal []byte, d, classes int, grid []float64, s Settings, report func(c, accuracy float64)) (best float64, accuracy []float64, err error) {
	if d < 1 || len(xFit) != len(yFit)*d || len(xVal) != len(yVal)*d || len(yFit) == 0 || len(yVal) == 0 || len(grid) == 0 {
		return 0, nil, fmt.Errorf("classify: choose C: %d fitting values for %d rows and %d validation values for %d rows of %d, %d values of C",
			len(xFit), len(yFit), len(xVal), len(yVal), d, len(grid))
	}
	var buf []float32
	bestAcc := -1.0
	for _, c := range grid {
		// A fresh copy of the fitting rows for each C (the fit
		// standardises them), in the same buffer.
		buf = append(buf[:0], xFit...)
		s.C = c
		m, _, err := TrainInPlace(buf, yFit, d, classes, s)
		if err != nil {
			return 0, nil, fmt.Errorf("classify: choose C: C = %v: %w", c, err)
		}
		acc, _ := Score(m.Predict(xVal), yVal, classes)
		accuracy = append(accuracy, acc)
		if report != nil {
			report(c, acc)
		}
		if acc > bestAcc || acc == bestAcc && c > best {
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
