package classify

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// DefaultCGrid is the grid ChooseC searches by default: the inverse L2
// strengths from scikit-learn's default C = 1 down to 0.01.
var DefaultCGrid = []float64{1, 0.3, 0.1, 0.03, 0.01}

// ChooseC picks the inverse L2 strength C from grid by validation, without
// looking at any test data: it holds out a seeded random heldOut fraction
// of the rows, fits on the rest with each C (the other settings from s)
// and returns the C whose fit classifies the held-out rows best (on a tie,
// the larger C, the weaker penalty), with the held-out accuracy of each C
// of grid. x is left as it is.
func ChooseC(x []float32, labels []byte, d, classes int, grid []float64, heldOut float64, s Settings) (best float64, accuracy []float64, err error) {
	n := len(labels)
	if len(x) != n*d || len(grid) == 0 || !(heldOut > 0 && heldOut < 1) {
		return 0, nil, fmt.Errorf("classify: choose C: %d values for %d rows of %d, %d values of C, held-out fraction %v", len(x), n, d, len(grid), heldOut)
	}
	perm := rand.New(rand.NewPCG(1, 7)).Perm(n)
	cut := int(float64(n) * heldOut)
	if cut < 1 || cut >= n {
		return 0, nil, fmt.Errorf("classify: choose C: %d rows cannot be split %v held out", n, heldOut)
	}
	val, fit := perm[:cut], perm[cut:]
	slices.Sort(val)
	slices.Sort(fit)
	xv, yv := gather(nil, x, labels, d, val)
	var xf []float32
	bestAcc := -1.0
	for _, c := range grid {
		// A fresh copy of the fitting rows each time (the fit standardises
		// them), in the same buffer.
		var yf []byte
		xf, yf = gather(xf[:0], x, labels, d, fit)
		s.C = c
		m, _, err := TrainInPlace(xf, yf, d, classes, s)
		if err != nil {
			return 0, nil, fmt.Errorf("classify: choose C: C = %v: %w", c, err)
		}
		acc, _ := Score(m.Predict(xv), yv, classes)
		accuracy = append(accuracy, acc)
		if acc > bestAcc || acc == bestAcc && c > best {
			best, bestAcc = c, acc
		}
	}
	return best, accuracy, nil
}

// gather appends the rows idx of x to dst and returns them with their
// labels.
func gather(dst, x []float32, labels []byte, d int, idx []int) ([]float32, []byte) {
	xs := slices.Grow(dst, len(idx)*d)
	ys := make([]byte, len(idx))
	for j, i := range idx {
		xs = append(xs, x[i*d:(i+1)*d]...)
		ys[j] = labels[i]
	}
	return xs, ys
}
