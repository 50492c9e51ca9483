package layering_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"calm/internal/layering"
)

// TestModule checks the imports of every package of the module, as go
// list reports them, against the levels.
func TestModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "calm/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		pkg = strings.TrimPrefix(pkg, "calm/")
		imports[pkg] = nil
		for _, d := range strings.Fields(deps) {
			if rest, ok := strings.CutPrefix(d, "calm/"); ok {
				imports[pkg] = append(imports[pkg], rest)
			}
		}
	}
	if len(imports) < 20 {
		t.Fatalf("go list found %d packages: %s", len(imports), out)
	}
	for _, bad := range layering.Check(imports) {
		t.Error(bad)
	}
}

// TestCheck plants imports that run up, sideways and to an unplaced
// package, and a package with no level: each must be reported.
func TestCheck(t *testing.T) {
	got := layering.Check(map[string][]string{
		"graph":      {"gemm", "internal/vecmath"}, // fine
		"em":         {"experiment", "graph"},      // up
		"estep":      {"mstep"},                    // sideways
		"viz":        {"newpkg"},                   // not placed
		"newpkg":     nil,                          // no level
		"cmd/mnist":  {"cmd/internal/cli", "em"},   // fine
		"experiment": {"em", "viz", "classify"},    // fine
	})
	want := []string{
		"em (level 4) imports experiment (level 6): an import may only run down",
		"estep (level 3) imports mstep (level 3): an import may only run down",
		"newpkg has no level: add it to layering.Levels and docs/architecture.md",
		"viz imports newpkg, which has no level",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
