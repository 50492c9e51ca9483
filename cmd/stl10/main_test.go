package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calm/cmd/internal/cli"
	"calm/em"
	"calm/stl10"
	"calm/stl10/stl10test"
)

// writeSet writes a small STL-10 directory of random images.
func writeSet(t *testing.T, nTrain, nTest, nUnlabeled int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	images := func(name string, n int) {
		pix := make([]byte, n*stl10.ImageSize)
		for i := range pix {
			pix[i] = byte(rng.IntN(256))
		}
		if err := stl10test.WriteImages(filepath.Join(dir, name), pix); err != nil {
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
	images("train_X.bin", nTrain)
	images("test_X.bin", nTest)
	images("unlabeled_X.bin", nUnlabeled)
	labels("train_y.bin", nTrain)
	labels("test_y.bin", nTest)
	return dir
}

func TestRunSmall(t *testing.T) {
	data := writeSet(t, 30, 20, 40)
	out := t.TempDir()
	var log bytes.Buffer
	err := run(context.Background(), []string{"-data", data, "-unlabeled", "-epochs", "2", "-kernels", "6", "-batch", "16", "-out", out}, &log)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	for _, name := range []string{"kernels-1.png", "loglik.png"} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	theta, err := em.LoadTheta(filepath.Join(out, "theta-1.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if s := theta.Shape(); s[0] != 6 || s[1] != 3 || s[2] != 15 {
		t.Errorf("theta-1.npy has shape %v, want (6,3,15,15)", s)
	}
	var m map[string]any
	raw, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	// Kernels from train + unlabeled; classifier on the 30 labelled images.
	if m["images"].(float64) != 70 || m["test_accuracy"] == nil {
		t.Errorf("metrics: images %v, test accuracy %v; want 70 and a number", m["images"], m["test_accuracy"])
	}
}

func TestRunErrors(t *testing.T) {
	data := writeSet(t, 3, 2, 1)
	os.Truncate(filepath.Join(data, "test_X.bin"), stl10.ImageSize+100)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no -data", nil, 2, "-data DIR is required"},
		{"truncated file", []string{"-data", data}, 1, "whole number"},
		{"kernel wider than the image", []string{"-data", data, "-width", "97"}, 2, "larger than the padded image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), append(tc.args, "-out", t.TempDir(), "-quiet"), new(bytes.Buffer))
			if cli.ExitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v (exit %d), want exit %d saying %q", err, cli.ExitCode(err), tc.code, tc.msg)
			}
		})
	}
}
