package em_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"calm/em"
	"calm/mnist"

	"codeberg.org/sbinet/npyio"
	"gorgonia.org/tensor"
)

// refDir holds trajectories of the PyTorch reference (see its README.md).
const refDir = "../../shared/calm-ref/mnist-k64-w20-p2-seed0"

type thetaRecorder struct{ thetas []*tensor.Dense }

func (r *thetaRecorder) Record(e em.Event) error {
	if e.Theta != nil {
		r.thetas = append(r.thetas, e.Theta.Clone().(*tensor.Dense))
	}
	return nil
}

// TestParityMNIST starts from the reference's θ0 on the 60 000 MNIST
// training images and compares two epochs of EM with the PyTorch reference:
// the LL of each epoch, θ after each, and the features of ten test images.
func TestParityMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("the full MNIST parity run is slow; run without -short")
	}
	if _, err := os.Stat(refDir); err != nil {
		t.Fatalf("reference trajectories missing: %v", err)
	}
	var ref struct {
		Kernels, Width, Pad, Batch, Epochs int
		Loglik                             []float64
	}
	raw, err := os.ReadFile(filepath.Join(refDir, "loglik.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	theta0, err := em.LoadTheta(filepath.Join(refDir, "theta0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := mnist.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := em.NewImages(train.Pixels, train.N, 1, train.Rows, train.Cols)
	if err != nil {
		t.Fatal(err)
	}
	for _, ops := range opSets {
		t.Run(ops.Name(), func(t *testing.T) {
			rec := &thetaRecorder{}
			res, err := em.Train(src, em.Settings{Kernels: ref.Kernels, Size: ref.Width, Pad: ref.Pad, Batch: ref.Batch,
				MaxEpochs: ref.Epochs, Init: theta0, Ops: ops, Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			for e, want := range ref.Loglik {
				got := res.LogLik[e]
				t.Logf("epoch %d: LL %.1f, reference %.1f, relative difference %.2g", e+1, got, want, math.Abs(got-want)/math.Abs(want))
				if math.Abs(got-want) > 1e-4*math.Abs(want) {
					t.Errorf("epoch %d: LL %v, reference %v", e+1, got, want)
				}
			}
			for e, th := range rec.thetas {
				want, err := em.LoadTheta(filepath.Join(refDir, "theta"+string(rune('1'+e))+".npy"))
				if err != nil {
					t.Fatal(err)
				}
				w, g := want.Data().([]float32), th.Data().([]float32)
				var maxAbs, maxDiff float64
				for i := range w {
					maxAbs = math.Max(maxAbs, math.Abs(float64(w[i])))
					maxDiff = math.Max(maxDiff, math.Abs(float64(w[i]-g[i])))
				}
				t.Logf("θ%d: max |Δ| = %.3g, max |θ| = %.3g", e+1, maxDiff, maxAbs)
				if maxDiff > 1e-3*maxAbs {
					t.Errorf("θ after epoch %d: max |Δ| = %v > 1e-3 · max |θ| = %v", e+1, maxDiff, 1e-3*maxAbs)
				}
			}
			f, err := os.Open(filepath.Join(refDir, "feats_test10.npy"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var want []float32
			if err := npyio.Read(f, &want); err != nil {
				t.Fatal(err)
			}
			tsrc, err := em.NewImages(test.Pixels[:10*test.Rows*test.Cols], 10, 1, test.Rows, test.Cols)
			if err != nil {
				t.Fatal(err)
			}
			got, err := em.Features(tsrc, res.Theta, ref.Pad, 10, ops)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d features, reference %d", len(got), len(want))
			}
			var worst float64
			for i := range want {
				worst = max(worst, math.Abs(float64(got[i]-want[i]))/(1+math.Abs(float64(want[i]))))
			}
			t.Logf("features: max relative difference %.3g", worst)
			if worst > 1e-4 {
				t.Errorf("features differ from the reference by %v (relative), first: got %v, want %v", worst, got[:4], want[:4])
			}
		})
	}
}
