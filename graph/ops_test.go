package graph_test

import (
	"math"
	"testing"

	"calm/gemm"
	"calm/graph"
	"calm/graph/graphtest"
	"calm/internal/naive"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestOpSets holds every op set of the one list, each with every gemm
// kernel this CPU runs, to the float64 loops of graphtest.
func TestOpSets(t *testing.T) {
	sets := graph.OpSets()
	if want := len(gemm.Kernels()) + 1; len(sets) != want {
		t.Errorf("%d op sets, want %d (Fast with each kernel, and Gorgonia)", len(sets), want)
	}
	for _, ops := range sets {
		t.Run(ops.Name(), func(t *testing.T) { graphtest.TestOps(t, ops) })
	}
}

func TestLookup(t *testing.T) {
	for _, ops := range graph.OpSets() {
		got, err := graph.Lookup(ops.Name())
		if err != nil || got.Name() != ops.Name() {
			t.Errorf("Lookup(%q) = %v, %v", ops.Name(), got, err)
		}
	}
	if _, err := graph.Lookup("cudnn"); err == nil {
		t.Error("Lookup of an unknown op set succeeded")
	}
}

func TestParsePooling(t *testing.T) {
	for _, tc := range []struct {
		name string
		want graph.Pooling
		ok   bool
	}{
		{"image", graph.ImageWide, true},
		{"grid3", graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 3}, true},
		{"max", graph.Pooling{Reduce: graph.MaxCells, Grid: 1}, true},
		{"max4", graph.Pooling{Reduce: graph.MaxCells, Grid: 4}, true},
		{"grid0", graph.Pooling{}, false},
		{"grid03", graph.Pooling{}, false},
		{"grid", graph.Pooling{}, false},
		{"mean2", graph.Pooling{Reduce: graph.MeanCells, Grid: 2}, true},
		{"sum2", graph.Pooling{}, false},
		{"pyramid3", graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 3, Pyramid: true}, true},
		{"maxpyramid2", graph.Pooling{Reduce: graph.MaxCells, Grid: 2, Pyramid: true}, true},
		{"pyramid0", graph.Pooling{}, false},
		{"post-mean3", graph.Pooling{Reduce: graph.MeanCells, Grid: 3, Posterior: true}, true},
		{"post-pyramid2", graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 2, Pyramid: true, Posterior: true}, true},
		{"post-post-mean3", graph.Pooling{}, false},
		{"post-", graph.Pooling{}, false},
		{"pyramid", graph.Pooling{}, false},
	} {
		got, err := graph.ParsePooling(tc.name)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParsePooling(%q) = %v, %v", tc.name, got, err)
		}
		if tc.ok && got.Name() != tc.name {
			t.Errorf("ParsePooling(%q).Name() = %q", tc.name, got.Name())
		}
	}
}

func TestGorgoniaLogSumExpIsWrong(t *testing.T) {
	// Documents why this package has its own LogSumExp: if Gorgonia's is
	// ever fixed, this test fails and the note in ops.go can go.
	g := G.NewGraph()
	x := G.NewVector(g, tensor.Float64, G.WithShape(3), G.WithName("x"), G.WithValue(tensor.New(tensor.WithBacking([]float64{1, 2, 3}))))
	lse, err := G.LogSumExp(x, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := lse.Value().Data().(float64)
	if want := naive.LogSumExp([]float64{1, 2, 3}); math.Abs(got-want) < 1e-6 {
		t.Errorf("G.LogSumExp([1 2 3]) = %v is right now (want %v): Gorgonia was fixed", got, want)
	}
}
