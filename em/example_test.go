package em_test

import (
	"fmt"
	"math/rand/v2"

	"calm/dataset"
	"calm/em"
	"calm/graph"
)

// Train a layer of 3 kernels on 100 noisy 8×8 images that each hold a
// bright 3×3 square somewhere, then pool features from it.
func ExampleTrain() {
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 100
	pix := make([]float32, n*64)
	for i := 0; i < n; i++ {
		for p := 0; p < 64; p++ {
			pix[i*64+p] = float32(0.1 * rng.NormFloat64())
		}
		y, x := rng.IntN(6), rng.IntN(6)
		for a := 0; a < 3; a++ {
			for b := 0; b < 3; b++ {
				pix[i*64+(y+a)*8+x+b] += 1
			}
		}
	}
	src, err := dataset.NewImages(pix, n, 1, 8, 8)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := em.Train(src, em.Settings{Kernels: 3, Width: 3, Pad: 1, Batch: 32, MaxEpochs: 5})
	if err != nil {
		fmt.Println(err)
		return
	}
	feats, err := em.Features(src, res.Layer, graph.ImageWide, nil, 32)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("epochs:", len(res.LogLik), res.Status)
	fmt.Println("log-likelihood rose:", res.LogLik[4] > res.LogLik[0])
	fmt.Println("features:", len(feats), "=", n, "images × 3 kernels")
	// Output:
	// epochs: 5 epoch limit
	// log-likelihood rose: true
	// features: 300 = 100 images × 3 kernels
}
