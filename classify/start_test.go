package classify

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestStart fits the same rows from zero and from a model fitted with
// another C on a part of them (Settings.Start): both must reach the
// optimum, to the tolerance, which the float64 fit from zero (Exact) gives,
// and the fit started near it must take fewer iterations.
func TestStart(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const n, d, k = 2000, 40, 4
	x := make([]float32, n*d)
	y := make([]byte, n)
	for i := range y {
		y[i] = byte(rng.IntN(k))
		for j := 0; j < d; j++ {
			v := 2*rng.NormFloat64() + float64(j)
			if j%k == int(y[i]) {
				v += 0.7
			}
			x[i*d+j] = float32(v)
		}
	}
	const c = 0.05
	exact, _, err := Train(x, y, d, k, Settings{C: c, Exact: true})
	if err != nil {
		t.Fatal(err)
	}
	near, _, err := Train(x[:n*3/4*d], y[:n*3/4], d, k, Settings{C: 2 * c})
	if err != nil {
		t.Fatal(err)
	}
	cold, coldFit, err := Train(x, y, d, k, Settings{C: c})
	if err != nil {
		t.Fatal(err)
	}
	warm, warmFit, err := Train(x, y, d, k, Settings{C: c, Start: near})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Model{"from zero": cold, "from the start": warm} {
		var worst float64
		for i := range exact.W {
			worst = math.Max(worst, math.Abs(m.W[i]-exact.W[i]))
		}
		for i := range exact.B {
			worst = math.Max(worst, math.Abs(m.B[i]-exact.B[i]))
		}
		if worst > 1e-3 {
			t.Errorf("%s: weights %v from the float64 optimum", name, worst)
		}
	}
	t.Logf("iterations from zero %d, from the start %d", coldFit.Iterations, warmFit.Iterations)
	if !coldFit.Converged || !warmFit.Converged || warmFit.Iterations >= coldFit.Iterations {
		t.Errorf("from zero %+v, from the start %+v: want both converged, the start in fewer iterations", coldFit, warmFit)
	}
	if _, _, err := Train(x, y, d, k, Settings{Start: &Model{Classes: k, Features: d + 1}}); err == nil {
		t.Error("a start of other features: want an error")
	}
}
