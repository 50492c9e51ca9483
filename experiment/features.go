package experiment

import (
	"fmt"
	"path/filepath"
	"strings"

	"calm/dataset"
	"calm/em"
	"calm/estep"
	"calm/graph"
)

// FeatureSet is a named set of features of a trained model: the maps of
// some of its layers, each pooled its own way, side by side in the order
// of Layers.
type FeatureSet struct {
	Name   string
	Layers []estep.LayerFeatures
}

// FeatureSets returns the feature sets that a run of a model of the given
// number of layers evaluates, in its order: for each of pools, the top
// layer's features (named by the pooling); in a stack, then each of pools
// over every layer side by side ("<pooling>-all"); then for each of
// layerPools, which holds one pooling per layer, every layer pooled its
// own way (LayerPoolingsName). It refuses a layerPools entry whose count
// does not match the layers.
func FeatureSets(pools []graph.Pooling, layerPools [][]graph.Pooling, layers int) ([]FeatureSet, error) {
	top, all := layers-1, allLayers(layers)
	var sets []FeatureSet
	for _, p := range pools {
		sets = append(sets, FeatureSet{Name: p.Name(), Layers: estep.Pooled(p, top)})
	}
	if top > 0 {
		for _, p := range pools {
			sets = append(sets, FeatureSet{Name: p.Name() + "-all", Layers: estep.Pooled(p, all...)})
		}
	}
	for _, ps := range layerPools {
		if len(ps) != layers {
			return nil, fmt.Errorf("pooling %s: %d poolings for %d layers (one per layer)", LayerPoolingsName(ps), len(ps), layers)
		}
		set := FeatureSet{Name: LayerPoolingsName(ps)}
		for l, p := range ps {
			set.Layers = append(set.Layers, estep.LayerFeatures{Layer: l, Pooling: p})
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// LayerPoolingsName is the name of a feature set of every layer of a
// stack, layer l pooled by ps[l]: their names joined by "+"
// ("post-root-mean-pyramid3+lse-pyramid3"), as -pool takes it.
func LayerPoolingsName(ps []graph.Pooling) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name()
	}
	return strings.Join(names, "+")
}

// Features returns the features of set (one of FeatureSets) of the images
// of src under the model trained into dir (its model.json and the files
// it names), the images whitened first if the model was trained on
// whitened images. It returns one row of d values per image. The rows
// equal, bit for bit, those the training run wrote with -features for the
// same images.
func Features(dir string, src dataset.Source, set FeatureSet, ops graph.Ops) (rows []float32, d int, err error) {
	st, err := em.LoadStack(dir)
	if err != nil {
		return nil, 0, err
	}
	first := st.Layers[0].Config
	c, h, w := first.Channels, first.Rows, first.Cols
	if wh := st.Whitening; wh != nil && wh.Patches {
		// Layer 1 sees each whitened patch as the channels of one position.
		f := wh.Width
		c, h, w = c/(f*f), h+f-1, w+f-1
	}
	if _, sc, sh, sw := src.Shape(); sc != c || sh != h || sw != w {
		return nil, 0, fmt.Errorf("experiment: the model in %s takes images of %d×%d×%d, these are %d×%d×%d", dir, c, h, w, sc, sh, sw)
	}
	for _, f := range set.Layers {
		if f.Layer < 0 || f.Layer >= len(st.Layers) {
			return nil, 0, fmt.Errorf("experiment: feature set %s: layer %d of a model of %d", set.Name, f.Layer+1, len(st.Layers))
		}
		uh, uw := st.Layers[f.Layer].Config.Positions()
		if p := f.Pooling; p.Grid > min(uh, uw) {
			return nil, 0, fmt.Errorf("experiment: pooling %s: a %d×%d grid over layer %d's %d×%d positions", p.Name(), p.Grid, p.Grid, f.Layer+1, uh, uw)
		}
	}
	if wh := st.Whitening; wh != nil {
		ws, err := wh.Source(src, ops, em.DefaultBatch)
		if err != nil {
			return nil, 0, err
		}
		defer ws.Close()
		src = ws
	}
	if rows, err = em.StackFeatures(src, st, set.Layers, ops, featureBatchFor(st, featureBatch)); err != nil {
		return nil, 0, err
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
