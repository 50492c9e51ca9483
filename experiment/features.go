package experiment

import (
	"fmt"
	"path/filepath"

	"calm/em"
	"calm/graph"
)

// Features returns the features of the images of src under the model
// trained into dir (its model.json and the files it names): the log joint
// of the top layer (or, with all, of every layer side by side) pooled by p,
// the images whitened first if the model was trained on whitened images
// (a one-layer model's "every layer" is its one). It returns one row of d
// values per image. The rows equal, bit for bit,
// those the training run wrote with -features for the same images.
func Features(dir string, src em.Source, p graph.Pooling, all bool, ops graph.Ops) (rows []float32, d int, err error) {
	st, err := em.LoadStack(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("experiment: %w", err)
	}
	first := st.Layers[0].Config
	if _, c, h, w := src.Shape(); c != first.Channels || h != first.Rows || w != first.Cols {
		return nil, 0, fmt.Errorf("experiment: the model in %s takes images of %d×%d×%d, these are %d×%d×%d", dir, first.Channels, first.Rows, first.Cols, c, h, w)
	}
	if wh := st.Whitening; wh != nil {
		ws, err := wh.Source(src, ops, em.DefaultBatch)
		if err != nil {
			return nil, 0, fmt.Errorf("experiment: %w", err)
		}
		defer ws.Close()
		src = ws
	}
	top := len(st.Layers) - 1
	uh, uw := st.Layers[top].Config.Positions()
	if p.Grid > min(uh, uw) {
		return nil, 0, fmt.Errorf("experiment: pooling %s: a %d×%d grid over the top layer's %d×%d positions", p.Name(), p.Grid, p.Grid, uh, uw)
	}
	layers := []int{top}
	if all {
		layers = layers[:0]
		for l := range st.Layers {
			layers = append(layers, l)
		}
	}
	if rows, err = em.StackFeatures(src, st, layers, p, ops, featureBatch); err != nil {
		return nil, 0, fmt.Errorf("experiment: %w", err)
	}
	n, _, _, _ := src.Shape()
	return rows, len(rows) / n, nil
}

// SaveFeatures writes rows (n×d float32) as path, a .npy file.
func SaveFeatures(path string, rows []float32, d int) error {
	if filepath.Ext(path) != ".npy" {
		return fmt.Errorf("experiment: features file %s: want a .npy name", path)
	}
	return em.SaveNpy(path, rows, len(rows)/d, d)
}
