package classify_test

import (
	"fmt"
	"math/rand/v2"

	"calm/classify"
)

// A softmax regression on two features, the first of which tells the
// class; validation chooses C, then the model is fitted on every row.
func ExampleTrain() {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, d = 400, 2
	x := make([]float32, n*d)
	y := make([]byte, n)
	for i := range y {
		y[i] = byte(i % 2)
		x[i*d] = float32(2*float64(y[i]) - 1 + 0.5*rng.NormFloat64())
		x[i*d+1] = float32(rng.NormFloat64())
	}
	ch, err := classify.ChooseC(x[:300*d], y[:300], x[300*d:], y[300:], d, 2, classify.DefaultCGrid, classify.Settings{})
	if err != nil {
		panic(err)
	}
	m, fit, err := classify.Train(x, y, d, 2, classify.Settings{C: ch.C})
	if err != nil {
		panic(err)
	}
	acc, _ := classify.Score(m.Predict(x), y, 2)
	fmt.Printf("validation %.2f, train %.2f, converged %v\n", ch.Best(), acc, fit.Converged)
	// Output: validation 0.98, train 0.98, converged true
}
