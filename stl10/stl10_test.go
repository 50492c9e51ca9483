package stl10_test

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calm/stl10"

	"gonum.org/v1/gonum/mat"
)

// pattern is the byte planted at (row, col) of channel c of image i.
func pattern(i, c, row, col int) byte { return byte(i*7 + c*50 + row + 2*col) }

// WriteSet writes an STL-10 directory of small image counts with planted
// patterns, stored column-major per channel as the real files are.
func writeSet(t testing.TB, dir string, nTrain, nTest, nUnlabeled int) {
	t.Helper()
	images := func(name string, n, offset int) {
		b := make([]byte, n*stl10.ImageSize)
		for i := 0; i < n; i++ {
			for c := 0; c < 3; c++ {
				for col := 0; col < 96; col++ {
					for row := 0; row < 96; row++ {
						b[i*stl10.ImageSize+c*96*96+col*96+row] = pattern(i+offset, c, row, col)
					}
				}
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	labels := func(name string, n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i%10 + 1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images("train_X.bin", nTrain, 0)
	images("test_X.bin", nTest, 100)
	images("unlabeled_X.bin", nUnlabeled, 200)
	labels("train_y.bin", nTrain)
	labels("test_y.bin", nTest)
}

// TestOrientation reads the planted patterns back unwhitened: channel
// order, the column-major transpose and the label offset must all be right.
func TestOrientation(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 3, 2, 4)
	s, err := stl10.Load(dir, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Train.Len() != 3 || s.Test.Len() != 2 || s.Unlabeled.Len() != 4 {
		t.Fatalf("counts %d, %d, %d, want 3, 2, 4", s.Train.Len(), s.Test.Len(), s.Unlabeled.Len())
	}
	dst := make([]float32, 2*stl10.ImageSize)
	if err := s.Unlabeled.Read(dst, 1); err != nil { // images 1 and 2
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		for c := 0; c < 3; c++ {
			for _, p := range [][2]int{{0, 0}, {0, 95}, {95, 0}, {10, 70}} {
				got := dst[i*stl10.ImageSize+c*96*96+p[0]*96+p[1]]
				want := float32(pattern(201+i, c, p[0], p[1])) / 255
				if got != want {
					t.Errorf("image %d channel %d (row %d, col %d) = %v, want %v", i+1, c, p[0], p[1], got, want)
				}
			}
		}
	}
	for i, l := range s.TrainLabels {
		if int(l) != i%10 {
			t.Errorf("train label %d = %d, want %d", i, l, i%10)
		}
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 3, 2, 1)
	// A file that is not a whole number of images.
	truncated := filepath.Join(dir, "short.bin")
	if err := os.WriteFile(truncated, make([]byte, stl10.ImageSize+5), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := stl10.Open(truncated, false); err == nil || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("truncated file: %v", err)
	}
	if _, err := stl10.Open(filepath.Join(dir, "none.bin"), false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// Labels that do not match the images, or fall outside 1–10.
	os.WriteFile(filepath.Join(dir, "train_y.bin"), []byte{1, 2}, 0o644)
	if _, err := stl10.Load(dir, false, false); err == nil || !strings.Contains(err.Error(), "2 labels") {
		t.Errorf("2 labels for 3 images: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "train_y.bin"), []byte{1, 0, 3}, 0o644)
	if _, err := stl10.Load(dir, false, false); err == nil || !strings.Contains(err.Error(), "not in 1") {
		t.Errorf("label 0: %v", err)
	}
	// A read past the end, and a file cut short after it was opened.
	im, err := stl10.Open(filepath.Join(dir, "test_X.bin"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if err := im.Read(make([]float32, 2*stl10.ImageSize), 1); err == nil {
		t.Error("read past the last image succeeded")
	}
	os.Truncate(filepath.Join(dir, "test_X.bin"), stl10.ImageSize)
	if err := im.Read(make([]float32, stl10.ImageSize), 1); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("file cut short: %v, want io.ErrUnexpectedEOF", err)
	}
}

// centred returns x (n×n) with each row's mean subtracted.
func centred(x []float64, n int) *mat.Dense {
	x0 := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		var m float64
		for j := 0; j < n; j++ {
			m += x[i*n+j]
		}
		for j := 0; j < n; j++ {
			x0.Set(i, j, x[i*n+j]-m/float64(n))
		}
	}
	return x0
}

// zcaSVD whitens x (n×n) through its SVD instead of an eigendecomposition
// of the covariance: x₀ = U·S·Wᵀ gives C = U·(S²/n + ε)·Uᵀ.
func zcaSVD(x []float64, n int) []float64 {
	x0 := centred(x, n)
	var svd mat.SVD
	if !svd.Factorize(x0, mat.SVDFull) {
		panic("svd failed")
	}
	var u mat.Dense
	svd.UTo(&u)
	sv := svd.Values(nil)
	scale := mat.NewDiagDense(n, nil)
	for i, s := range sv {
		r := math.Sqrt(s*s/float64(n) + 1e-7)
		if r < 1e-5 {
			r++
		}
		scale.SetDiag(i, 1/r)
	}
	var t, w mat.Dense
	t.Mul(u.T(), x0)
	t.Mul(scale, &t)
	w.Mul(&u, &t)
	return w.RawMatrix().Data
}

func TestWhiten(t *testing.T) {
	const n = 96
	rng := rand.New(rand.NewPCG(1, 2))
	z := stl10.NewWhitener(n)
	for trial := 0; trial < 3; trial++ {
		x := make([]float64, n*n)
		for i := range x {
			// Correlated rows, like neighbouring image rows.
			x[i] = rng.Float64()
			if i >= n {
				x[i] = 0.7*x[i-n] + 0.3*x[i]
			}
		}
		want := zcaSVD(x, n)
		got := append([]float64(nil), x...)
		if err := z.Whiten(got); err != nil {
			t.Fatal(err)
		}
		// Both paths divide by √d for every direction; the one direction
		// the mean removal kills has √d = √1e-7, which amplifies rounding
		// by 3000: compare in the norm of the whole plane.
		var diff, norm float64
		for i := range want {
			diff += (got[i] - want[i]) * (got[i] - want[i])
			norm += want[i] * want[i]
		}
		if rel := math.Sqrt(diff / norm); rel > 1e-6 {
			t.Errorf("trial %d: whitened plane differs from the SVD reference by %.3g (relative)", trial, rel)
		}
		// The defining property: the whitened rows' covariance is
		// I − 1e-7·C⁻¹ (C the regularised covariance of the centred rows).
		wm := mat.NewDense(n, n, got)
		var cw mat.Dense
		cw.Mul(wm, wm.T())
		cw.Scale(1/float64(n), &cw)
		x0 := centred(x, n)
		var c, cinv mat.Dense
		c.Mul(x0, x0.T())
		c.Scale(1/float64(n), &c)
		for i := 0; i < n; i++ {
			c.Set(i, i, c.At(i, i)+1e-7)
		}
		if err := cinv.Inverse(&c); err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				want := -1e-7 * cinv.At(i, j)
				if i == j {
					want++
				}
				worst = math.Max(worst, math.Abs(cw.At(i, j)-want))
			}
		}
		if worst > 1e-6 {
			t.Errorf("trial %d: whitened covariance is off I − 1e-7·C⁻¹ by %.3g", trial, worst)
		}
	}
}
