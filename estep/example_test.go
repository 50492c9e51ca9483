package estep_test

import (
	"fmt"

	"calm/estep"
	"calm/graph"

	"gorgonia.org/tensor"
)

// Features pooled by the maximum over a 2×2 grid of positions: for one
// 3×3 image holding a single bright pixel in its centre and one 2×2 kernel
// of ones, every position covers the pixel, so each cell (one position
// each) holds L = <θ, patch> − ½‖θ‖² = 1 − 2.
func ExampleNewStackFeatures_max() {
	cfg := graph.Config{Kernels: 1, Width: 2, Channels: 1, Rows: 3, Cols: 3, Batch: 1}
	pool, err := graph.ParsePooling("max2")
	if err != nil {
		fmt.Println(err)
		return
	}
	// One layer is a stack of one stage; its features are those of stage 0.
	f, err := estep.NewStackFeatures([]estep.Stage{{Config: cfg}}, graph.Fast{}, estep.Pooled(pool, 0))
	if err != nil {
		fmt.Println(err)
		return
	}
	x := tensor.New(tensor.WithShape(1, 1, 3, 3), tensor.WithBacking([]float32{0, 0, 0, 0, 1, 0, 0, 0, 0}))
	theta := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float32{1, 1, 1, 1}))
	feats := make([]float32, f.Len())
	if err := f.RunInto(feats, x, []estep.StageParams{{Theta: theta}}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(feats)
	// Output: [-1 -1 -1 -1]
}
