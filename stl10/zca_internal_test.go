package stl10

import (
	"math"
	"testing"
)

// TestEigenScale feeds the eigenvalues an eigendecomposition can return,
// rounding's small negatives among them: every scale must be finite and
// at least the floor.
func TestEigenScale(t *testing.T) {
	for _, tc := range []struct{ d, want float64 }{
		{4, 2},
		{1e-12, 1 + 1e-6},
		{0, 1},
		{-1e-17, 1}, // √ of it is NaN: once left NaN, and NaN + 1 is NaN
	} {
		if got := eigenScale(tc.d); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("eigenScale(%g) = %v, want %v", tc.d, got, tc.want)
		}
	}
}
