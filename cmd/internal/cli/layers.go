package cli

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"calm/graph"
)

// A LayerSpec is one layer of -layers.
type LayerSpec struct {
	Kernels, Width, Pad int
	Epochs              int             // −1: as -epochs says
	Transform           graph.Transform // what the next layer sees of it
}

// layerRE matches one layer: KxW, optionally pP, optionally eE,
// optionally ":" and the transform's name (graph.ParseTransform).
var layerRE = regexp.MustCompile(`^(\d+)x(\d+)(?:p(\d+))?(?:e(\d+))?(?::(\S+))?$`)

// ParseLayers parses a -layers spec: layers separated by commas, each
// KxW (K kernels of W×W), then optionally pP (padding P, default 0), then
// optionally eE (E epochs of EM for this layer, instead of -epochs), then
// optionally ":" and what the next layer sees of it: "post" (the posterior
// over kernels at each position), "post-root" (its square root, after the
// pooling) or "joint" (the log joint), optionally pooled over windows of
// N×N with stride N by "+meanN", "+maxN" or "+lseN" (log-sum-exp):
// graph.ParseTransform's names. Every layer but the last needs a
// transform; the last may not have one. Example: 48x5p2:post+mean2,64x5e3.
func ParseLayers(spec string) ([]LayerSpec, error) {
	var out []LayerSpec
	parts := strings.Split(spec, ",")
	for i, p := range parts {
		m := layerRE.FindStringSubmatch(strings.TrimSpace(p))
		if m == nil {
			return nil, fmt.Errorf("-layers: layer %d %q: want KxW, then optionally pP and eE, then optionally :post, :post-root or :joint and +meanN, +maxN or +lseN", i+1, p)
		}
		atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
		l := LayerSpec{Kernels: atoi(m[1]), Width: atoi(m[2]), Pad: atoi(m[3]), Epochs: -1}
		if m[4] != "" {
			l.Epochs = atoi(m[4])
		}
		switch {
		case m[5] == "" && i < len(parts)-1:
			return nil, fmt.Errorf("-layers: layer %d %q feeds layer %d: give it :post or :joint", i+1, p, i+2)
		case m[5] != "" && i == len(parts)-1:
			return nil, fmt.Errorf("-layers: the top layer %q feeds none: drop its transform", p)
		}
		if m[5] != "" {
			t, err := graph.ParseTransform(m[5])
			if err != nil {
				return nil, fmt.Errorf("-layers: layer %d %q: %w", i+1, p, err)
			}
			l.Transform = t
		}
		if l.Kernels < 1 || l.Width < 1 {
			return nil, fmt.Errorf("-layers: layer %d %q: want positive kernels and width", i+1, p)
		}
		out = append(out, l)
	}
	return out, nil
}
