package layering

import (
	"fmt"
	"sort"
	"strings"
)

// Levels gives each package of the module (its import path less "calm/")
// its level: a package may import packages of lower levels only. Packages
// under internal/ are at level 0 and may be imported from anywhere.
var Levels = map[string]int{
	"gemm": 1, "idx": 1, "imagefolder": 1, "cifar10": 1, "stl10": 1, "npy": 1, "dataset": 1,
	"stl10/stl10test": 2,
	"graph":           2, "mnist": 2, "classify": 2, "viz": 2,
	"estep": 3, "mstep": 3, "graph/graphtest": 3,
	"em":                4,
	"experiment/rundir": 5,
	"experiment":        6,
	"cmd/internal/cli":  7,
	"cmd/calm":          8, "cmd/cifar10": 8, "cmd/mnist": 8, "cmd/stl10": 8,
}

// Check returns, sorted, a line for every import of imports (a package's
// path, less "calm/", to those it imports) that runs up or sideways, and
// for every package Levels does not place.
func Check(imports map[string][]string) []string {
	level := func(pkg string) (int, bool) {
		if strings.HasPrefix(pkg, "internal/") {
			return 0, true
		}
		l, ok := Levels[pkg]
		return l, ok
	}
	var bad []string
	for pkg, deps := range imports {
		from, ok := level(pkg)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s has no level: add it to layering.Levels and docs/architecture.md", pkg))
			continue
		}
		for _, dep := range deps {
			to, ok := level(dep)
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("%s imports %s, which has no level", pkg, dep))
			case to >= from && !strings.HasPrefix(dep, "internal/"):
				bad = append(bad, fmt.Sprintf("%s (level %d) imports %s (level %d): an import may only run down", pkg, from, dep, to))
			}
		}
	}
	sort.Strings(bad)
	return bad
}
