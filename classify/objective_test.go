package classify

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestObjective compares the objective and its gradient at random
// parameters with float64 loops over the standardised rows, for a number
// of rows that fills neither the shards nor the blocks evenly, and a
// number of features that is not a whole number of the narrow products'
// chunks, under each way of computing the products.
func TestObjective(t *testing.T) {
	const n, d, k = 1037, 71, 4
	x, y, w := randomProblem(rand.New(rand.NewPCG(5, 5)), n, d, k, 1)
	const lambda = 0.01
	for _, products := range productsOf {
		exact := products.exact
		obj := newObjectiveWith(x, y, n, d, k, lambda, exact, products.narrow)
		grad := make([]float64, len(w))
		got := obj.eval(w, grad)
		// The same objective in float64.
		want, wantGrad := naiveObjective(x, y, w, n, d, k, lambda)
		// float32 logits of d products: about 1e-6 relative; float64 ones, 1e-12.
		tol := 1e-5
		if exact {
			tol = 1e-12
		}
		if math.Abs(got-want) > tol*math.Abs(want) {
			t.Errorf("%s: objective %v, want %v", products.name, got, want)
		}
		for i := range grad {
			if math.Abs(grad[i]-wantGrad[i]) > tol*(1+math.Abs(wantGrad[i])) {
				t.Fatalf("%s: gradient[%d] = %v, want %v", products.name, i, grad[i], wantGrad[i])
			}
		}
		if f := obj.eval(w, nil); f != got {
			t.Errorf("%s: objective without the gradient %v, with it %v", products.name, f, got)
		}
	}
}

// naiveObjective is the objective and its gradient in float64 loops.
func naiveObjective(x []float32, y []byte, w []float64, n, d, k int, lambda float64) (float64, []float64) {
	var want float64
	wantGrad := make([]float64, len(w))
	for i := 0; i < n; i++ {
		z := make([]float64, k)
		zmax := math.Inf(-1)
		for c := range z {
			z[c] = w[k*d+c]
			for j := 0; j < d; j++ {
				z[c] += w[c*d+j] * float64(x[i*d+j])
			}
			zmax = math.Max(zmax, z[c])
		}
		var s float64
		for _, v := range z {
			s += math.Exp(v - zmax)
		}
		lse := zmax + math.Log(s)
		want += lse - z[y[i]]
		for c := range z {
			r := math.Exp(z[c] - lse)
			if c == int(y[i]) {
				r--
			}
			for j := 0; j < d; j++ {
				wantGrad[c*d+j] += r * float64(x[i*d+j]) / float64(n)
			}
			wantGrad[k*d+c] += r / float64(n)
		}
	}
	var reg float64
	for i, v := range w[:k*d] {
		reg += v * v
		wantGrad[i] += lambda * v
	}
	return want/float64(n) + lambda*reg/2, wantGrad
}

// TestHingeObjective compares the squared hinge objective and its gradient
// at random parameters with float64 loops, and a fit's gradient at its
// optimum, recomputed by them, with zero.
func TestHingeObjective(t *testing.T) {
	const n, d, k = 1037, 71, 4
	x, y, w := randomProblem(rand.New(rand.NewPCG(6, 6)), n, d, k, 0.3)
	for i, l := range y {
		x[i*d+int(l)] += 1.5 // a signal, so the margins vary
	}
	const lambda = 0.01
	for _, products := range productsOf {
		exact := products.exact
		obj := newObjectiveWith(x, y, n, d, k, lambda, exact, products.narrow)
		obj.hinge = true
		grad := make([]float64, len(w))
		got := obj.eval(w, grad)
		want, wantGrad := naiveHinge(x, y, w, n, d, k, lambda)
		tol := 1e-5
		if exact {
			tol = 1e-12
		}
		if math.Abs(got-want) > tol*math.Abs(want) {
			t.Errorf("%s: objective %v, want %v", products.name, got, want)
		}
		for i := range grad {
			if math.Abs(grad[i]-wantGrad[i]) > tol*(1+math.Abs(wantGrad[i])) {
				t.Fatalf("%s: gradient[%d] = %v, want %v", products.name, i, grad[i], wantGrad[i])
			}
		}
	}
	// A fit, by the float32 path, must stop where the float64 loops find
	// no slope: the optimum of this objective on the standardised rows.
	m, fit, err := Train(x, y, d, k, Settings{Loss: SquaredHinge, C: 1 / (lambda * n)})
	if err != nil {
		t.Fatal(err)
	}
	xs := make([]float32, len(x))
	m.Standardise(xs, x)
	_, g := naiveHinge(xs, y, append(append([]float64(nil), m.W...), m.B...), n, d, k, lambda)
	for i, v := range g {
		if math.Abs(v) > 1e-4 {
			t.Fatalf("at the fit's optimum (%s), gradient[%d] = %v by float64 loops", fit.Status, i, v)
		}
	}
}

// naiveHinge is the squared hinge objective and its gradient in float64
// loops: (1/n) Σ_i Σ_c max(0, 1 − t_ic·s_ic)² + λ‖W‖²/2.
func naiveHinge(x []float32, y []byte, w []float64, n, d, k int, lambda float64) (float64, []float64) {
	var f float64
	g := make([]float64, len(w))
	for i := 0; i < n; i++ {
		for c := 0; c < k; c++ {
			s := w[k*d+c]
			for j := 0; j < d; j++ {
				s += w[c*d+j] * float64(x[i*d+j])
			}
			t := -1.0
			if int(y[i]) == c {
				t = 1
			}
			if m := 1 - t*s; m > 0 {
				f += m * m / float64(n)
				for j := 0; j < d; j++ {
					g[c*d+j] += -2 * t * m * float64(x[i*d+j]) / float64(n)
				}
				g[k*d+c] += -2 * t * m / float64(n)
			}
		}
	}
	for i := 0; i < k*d; i++ {
		f += lambda * w[i] * w[i] / 2
		g[i] += lambda * w[i]
	}
	return f, g
}

// productsOf are the ways the objective computes its products.
var productsOf = []struct {
	name          string
	exact, narrow bool
}{{"float32 GEMM", false, false}, {"narrow", false, true}, {"float64", true, false}}

// randomProblem draws, in this order from rng, n rows of d standard normal
// features, their labels uniform over k classes, and parameters W (k×d)
// then b (k), each N(0, wScale²).
func randomProblem(rng *rand.Rand, n, d, k int, wScale float64) (x []float32, y []byte, w []float64) {
	x = make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y = make([]byte, n)
	for i := range y {
		y[i] = byte(rng.IntN(k))
	}
	w = make([]float64, k*(d+1))
	for i := range w {
		w[i] = wScale * rng.NormFloat64()
	}
	return x, y, w
}
