package experiment

import (
	"fmt"
	"path/filepath"

	"calm/em"
	"calm/estep"
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
	return features(dir, src, ops, func(layers int) ([]estep.LayerFeatures, error) {
		if !all {
			return estep.Pooled(p, layers-1), nil
		}
		return estep.Pooled(p, allLayers(layers)...), nil
	})
}

// LayerPoolFeatures is Features for a feature set of every layer of the
// model side by side, layer l pooled by pools[l] (one pooling per layer;
// -pool's "A+B").
func LayerPoolFeatures(dir string, src em.Source, pools []graph.Pooling, ops graph.Ops) (rows []float32, d int, err error) {
	return features(dir, src, ops, func(layers int) ([]estep.LayerFeatures, error) {
		return layerPooled(pools, layers)
	})
}

// layerPooled returns the features of every layer of a stack of the given
// number of layers, layer l pooled by pools[l].
func layerPooled(pools []graph.Pooling, layers int) ([]estep.LayerFeatures, error) {
	if len(pools) != layers {
		return nil, fmt.Errorf("pooling %s: %d poolings for %d layers (one per layer)", LayerPoolingsName(pools), len(pools), layers)
	}
	fs := make([]estep.LayerFeatures, len(pools))
	for l, p := range pools {
		fs[l] = estep.LayerFeatures{Layer: l, Pooling: p}
	}
	return fs, nil
}

// features computes the features that pick names, given the number of
// layers of the model in dir, for the images of src.
func features(dir string, src em.Source, ops graph.Ops, pick func(layers int) ([]estep.LayerFeatures, error)) (rows []float32, d int, err error) {
	st, err := em.LoadStack(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("experiment: %w", err)
	}
	first := st.Layers[0].Config
	if _, c, h, w := src.Shape(); c != first.Channels || h != first.Rows || w != first.Cols {
		return nil, 0, fmt.Errorf("experiment: the model in %s takes images of %d×%d×%d, these are %d×%d×%d", dir, first.Channels, first.Rows, first.Cols, c, h, w)
	}
	fs, err := pick(len(st.Layers))
	if err != nil {
		return nil, 0, fmt.Errorf("experiment: %w", err)
	}
	for _, f := range fs {
		uh, uw := st.Layers[f.Layer].Config.Positions()
		if p := f.Pooling; p.Grid > min(uh, uw) {
			return nil, 0, fmt.Errorf("experiment: pooling %s: a %d×%d grid over layer %d's %d×%d positions", p.Name(), p.Grid, p.Grid, f.Layer+1, uh, uw)
		}
	}
	if wh := st.Whitening; wh != nil {
		ws, err := wh.Source(src, ops, em.DefaultBatch)
		if err != nil {
			return nil, 0, fmt.Errorf("experiment: %w", err)
		}
		defer ws.Close()
		src = ws
	}
	if rows, err = em.StackFeatures(src, st, fs, ops, featureBatch); err != nil {
		return nil, 0, fmt.Errorf("experiment: %w", err)
	}
	n, _, _, _ := src.Shape()
	return rows, len(rows) / n, nil
}

// allLayers returns 0, 1, …, layers−1.
func allLayers(layers int) []int {
	all := make([]int, layers)
	for l := range all {
		all[l] = l
	}
	return all
}

// SaveFeatures writes rows (n×d float32) as path, a .npy file.
func SaveFeatures(path string, rows []float32, d int) error {
	if filepath.Ext(path) != ".npy" {
		return fmt.Errorf("experiment: features file %s: want a .npy name", path)
	}
	return em.SaveNpy(path, rows, len(rows)/d, d)
}
