package classify

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestObjective compares the objective and its gradient at random
// parameters with float64 loops over the standardised rows, for a number
// of rows that fills neither the shards nor the blocks evenly.
func TestObjective(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const n, d, k = 1037, 23, 4
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]byte, n)
	for i := range y {
		y[i] = byte(rng.IntN(k))
	}
	w := make([]float64, k*(d+1))
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	const lambda = 0.01
	for _, exact := range []bool{false, true} {
		obj := newObjective(x, y, n, d, k, lambda, exact)
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
			t.Errorf("exact %v: objective %v, want %v", exact, got, want)
		}
		for i := range grad {
			if math.Abs(grad[i]-wantGrad[i]) > tol*(1+math.Abs(wantGrad[i])) {
				t.Fatalf("exact %v: gradient[%d] = %v, want %v", exact, i, grad[i], wantGrad[i])
			}
		}
		if f := obj.eval(w, nil); f != got {
			t.Errorf("exact %v: objective without the gradient %v, with it %v", exact, f, got)
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
