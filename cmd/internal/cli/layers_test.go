package cli

import (
	"reflect"
	"testing"

	"calm/graph"
)

func TestParseLayers(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []LayerSpec
	}{
		{"64x20p2", []LayerSpec{{Kernels: 64, Width: 20, Pad: 2, Epochs: -1}}},
		{"48x5p2:post+mean2,64x5e3", []LayerSpec{
			{Kernels: 48, Width: 5, Pad: 2, Epochs: -1, Transform: graph.Transform{Posterior: true, Pool: 2, Reduce: graph.MeanCells}},
			{Kernels: 64, Width: 5, Epochs: 3}}},
		{"8x3e0:joint+lse3, 4x2p1:post,2x1", []LayerSpec{
			{Kernels: 8, Width: 3, Epochs: 0, Transform: graph.Transform{Pool: 3, Reduce: graph.LogSumExpCells}},
			{Kernels: 4, Width: 2, Pad: 1, Epochs: -1, Transform: graph.Transform{Posterior: true}},
			{Kernels: 2, Width: 1, Epochs: -1}}},
		{"64x5p2:post-root+max2,128x5", []LayerSpec{
			{Kernels: 64, Width: 5, Pad: 2, Epochs: -1, Transform: graph.Transform{Posterior: true, Root: true, Pool: 2, Reduce: graph.MaxCells}},
			{Kernels: 128, Width: 5, Epochs: -1}}},
	} {
		got, err := ParseLayers(tc.spec)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseLayers(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "64", "64x", "x5", "0x5", "48x5,64x5", "48x5:post,64x5:post", "48x5:pst,64x5", "48x5:post+avg2,4x2", "48x5:post+mean0,4x2", "48x5e:post,4x2", "48x5p2e1p3:post,4x2", "48x5:joint-root,4x2"} {
		if got, err := ParseLayers(bad); err == nil {
			t.Errorf("ParseLayers(%q) = %+v, want an error", bad, got)
		}
	}
}
