package stl10

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// ZCA whitening constants of the reference.
const (
	zcaEps   = 1e-7 // added to the covariance's diagonal
	zcaFloor = 1e-5 // below this √d, 1 is added to it
)

// Whitener whitens n×n planes; it keeps its work space between calls and
// is not safe for concurrent use.
type Whitener struct {
	n       int
	x, w, t *mat.Dense
	cov     *mat.SymDense
	eig     mat.EigenSym
	vecs    mat.Dense
	vals    []float64
}

// NewWhitener returns a Whitener of n×n planes.
func NewWhitener(n int) *Whitener {
	return &Whitener{
		n: n, x: mat.NewDense(n, n, nil), w: mat.NewDense(n, n, nil), t: mat.NewDense(n, n, nil),
		cov: mat.NewSymDense(n, nil), vals: make([]float64, n),
	}
}

// Whiten replaces the n×n row-major plane p by its ZCA whitening.
func (z *Whitener) Whiten(p []float64) error {
	n := z.n
	if len(p) != n*n {
		return fmt.Errorf("stl10: zca: %d values for a %d×%d plane", len(p), n, n)
	}
	x := z.x.RawMatrix().Data
	for i := 0; i < n; i++ {
		row := p[i*n : (i+1)*n]
		var mean float64
		for _, v := range row {
			mean += v
		}
		mean /= float64(n)
		for j, v := range row {
			x[i*n+j] = v - mean
		}
	}
	z.cov.SymOuterK(1/float64(n), z.x)
	for i := 0; i < n; i++ {
		z.cov.SetSym(i, i, z.cov.At(i, i)+zcaEps)
	}
	if !z.eig.Factorize(z.cov, true) {
		return fmt.Errorf("stl10: zca: eigendecomposition failed")
	}
	z.eig.Values(z.vals)
	z.eig.VectorsTo(&z.vecs)
	// t = Vᵀ·x, scaled row by row by 1/s; then p = V·t.
	z.t.Mul(z.vecs.T(), z.x)
	for i, d := range z.vals {
		s := eigenScale(d)
		row := z.t.RawRowView(i)
		for j := range row {
			row[j] /= s
		}
	}
	z.w.Mul(&z.vecs, z.t)
	copy(p, z.w.RawMatrix().Data)
	return nil
}

// eigenScale returns what the reference divides by for an eigenvalue d of
// the covariance: √d, plus 1 where √d < 1e-5. A covariance is positive
// semidefinite, so a negative d is rounding of a zero one: it counts as
// zero (its square root would be NaN, which no floor test catches).
func eigenScale(d float64) float64 {
	s := math.Sqrt(max(d, 0))
	if s < zcaFloor {
		s++
	}
	return s
}
