package estep_test

import (
	"fmt"

	"calm/estep"
	"calm/graph"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// maxPool is the fast op set with max pooling for the features: one
// method is the whole experiment.
type maxPool struct{ graph.Fast }

func (maxPool) Name() string { return "fast+maxpool" }

func (maxPool) Pool(x *G.Node, axes ...int) (*G.Node, error) { return G.Max(x, axes...) }

// Features pooled with max instead of logsumexp: for one 3×3 image holding
// a single bright pixel and one 2×2 kernel of ones, the best position
// covers the pixel: L = <θ, patch> − ½‖θ‖² = 1 − 2.
func ExampleNewFeatures_maxPool() {
	cfg := graph.Config{Kernels: 1, Channels: 1, Height: 3, Width: 3, Size: 2, Batch: 1}
	f, err := estep.NewFeatures(cfg, maxPool{})
	if err != nil {
		fmt.Println(err)
		return
	}
	x := tensor.New(tensor.WithShape(1, 1, 3, 3), tensor.WithBacking([]float32{0, 0, 0, 0, 1, 0, 0, 0, 0}))
	theta := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float32{1, 1, 1, 1}))
	feats, err := f.Run(x, theta)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(feats)
	// Output: [-1]
}
