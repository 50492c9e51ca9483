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
	if want := len(gemm.MicroKernels()) + 2; len(sets) != want {
		t.Errorf("%d op sets, want %d (Fast with each kernel, unfused, and Gorgonia)", len(sets), want)
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
		{"lse3", graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 3}, true},
		{"lse1", graph.Pooling{}, false}, // named image
		{"lse", graph.Pooling{}, false},  // named image
		{"max", graph.Pooling{Reduce: graph.MaxCells, Grid: 1}, true},
		{"max1", graph.Pooling{}, false}, // named max
		{"max4", graph.Pooling{Reduce: graph.MaxCells, Grid: 4}, true},
		{"lse0", graph.Pooling{}, false},
		{"lse03", graph.Pooling{}, false},
		{"grid3", graph.Pooling{}, false},
		{"mean2", graph.Pooling{Reduce: graph.MeanCells, Grid: 2}, true},
		{"sum2", graph.Pooling{}, false},
		{"lse-pyramid3", graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 3, Pyramid: true}, true},
		{"max-pyramid2", graph.Pooling{Reduce: graph.MaxCells, Grid: 2, Pyramid: true}, true},
		{"mean-pyramid1", graph.Pooling{Reduce: graph.MeanCells, Grid: 1, Pyramid: true}, true},
		{"lse-pyramid0", graph.Pooling{}, false},
		{"pyramid3", graph.Pooling{}, false},
		{"post-mean3", graph.Pooling{Reduce: graph.MeanCells, Grid: 3, Posterior: true}, true},
		{"post-lse-pyramid2", graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 2, Pyramid: true, Posterior: true}, true},
		{"post-image", graph.Pooling{Reduce: graph.LogSumExpCells, Grid: 1, Posterior: true}, true},
		{"post-post-mean3", graph.Pooling{}, false},
		{"post-root-mean3", graph.Pooling{Reduce: graph.MeanCells, Grid: 3, Posterior: true, Root: true}, true},
		{"post-root-mean-pyramid3", graph.Pooling{Reduce: graph.MeanCells, Grid: 3, Pyramid: true, Posterior: true, Root: true}, true},
		{"post-root-mean", graph.Pooling{Reduce: graph.MeanCells, Grid: 1, Posterior: true, Root: true}, true},
		{"post-root-lse3", graph.Pooling{}, false},
		{"post-root-max-pyramid2", graph.Pooling{}, false},
		{"post-root-image", graph.Pooling{}, false},
		{"root-mean3", graph.Pooling{}, false},
		{"post-root-root-mean3", graph.Pooling{}, false},
		{"post-post-root-mean3", graph.Pooling{}, false},
		{"post-", graph.Pooling{}, false},
		{"lse-pyramid", graph.Pooling{}, false},
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

func TestParseReduction(t *testing.T) {
	for _, tc := range []struct {
		name string
		want graph.Reduction
		ok   bool
	}{
		{"lse", graph.LogSumExpCells, true},
		{"max", graph.MaxCells, true},
		{"mean", graph.MeanCells, true},
		{"logsumexp", 0, false},
		{"", 0, false},
	} {
		got, err := graph.ParseReduction(tc.name)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseReduction(%q) = %v, %v", tc.name, got, err)
		}
		if text, err := got.MarshalText(); tc.ok && (err != nil || string(text) != tc.name) {
			t.Errorf("%v.MarshalText() = %q, %v", got, text, err)
		}
	}
	if _, err := graph.Reduction(7).MarshalText(); err == nil {
		t.Error("Reduction(7).MarshalText(): want an error")
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
