package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"calm/cmd/internal/cli"
	"calm/mnist"
)

// mnistFolder writes the first n MNIST training images as 28×28 grey PNGs
// into dir/train, unlabelled and named so that sorted order is MNIST's
// order, and the first m test images into dir/test/<label>/.
func mnistFolder(t *testing.T, n, m int) (dir string) {
	t.Helper()
	src, err := mnist.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := mnist.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	save := func(path string, pix []float32) {
		g := image.NewGray(image.Rect(0, 0, 28, 28))
		for i, v := range pix {
			g.Pix[i] = uint8(v*255 + 0.5)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, g); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for i := 0; i < n; i++ {
		save(filepath.Join(dir, "train", fmt.Sprintf("%05d.png", i)), train.Pixels[i*784:(i+1)*784])
	}
	for i := 0; i < m; i++ {
		save(filepath.Join(dir, "test", fmt.Sprint(test.Labels[i]), fmt.Sprintf("%05d.png", i)), test.Pixels[i*784:(i+1)*784])
	}
	return dir
}

func runMNIST(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"run", "../mnist"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cmd/mnist %v: %v\n%s", args, err, out)
	}
}

// TestSameAsIDX trains on a folder of PNGs made from the first 600 MNIST
// images and on the same images read from MNIST's IDX files: the kernels
// must be the same bit for bit. Then -trained writes the features of the
// folder's images under the IDX run's model: they must equal, bit for bit,
// the features that run wrote with -features.
func TestSameAsIDX(t *testing.T) {
	dir := mnistFolder(t, 600, 0)
	idx, folder, feats := t.TempDir(), t.TempDir(), t.TempDir()
	flags := []string{"-kernels", "8", "-width", "9", "-epochs", "1", "-quiet"}
	runMNIST(t, append(flags, "-limit", "600", "-features", "-pool", "lse2", "-labels", "", "-pixels=false", "-epoch-curve=false", "-out", idx)...)
	if err := run(context.Background(), append(flags, "-data", dir, "-out", folder), new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"theta-1.npy", "whitening.npy"} {
		a, err := os.ReadFile(filepath.Join(idx, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(folder, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the IDX files and the PNG folder", name)
		}
	}
	var log bytes.Buffer
	if err := run(context.Background(), []string{"-trained", idx, "-data", dir, "-features", "-pool", "lse2", "-out", feats}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	a, err := os.ReadFile(filepath.Join(idx, "features-lse2-train.npy"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(feats, "features-lse2-train.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("-trained features differ from the training run's -features (%d and %d bytes)", len(a), len(b))
	}
	index, err := os.ReadFile(filepath.Join(feats, "index-train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(index)), "\n"); len(lines) != 601 || !strings.HasSuffix(lines[1], `00000.png",`) {
		t.Errorf("index-train.csv: %d lines, the first image %q", len(lines), lines[1])
	}
	// Two poolings, one per layer, for this one-layer model: refused as a
	// usage error before anything is written.
	bad := filepath.Join(t.TempDir(), "bad")
	err = run(context.Background(), []string{"-trained", idx, "-data", dir, "-features", "-pool", "post-root-mean2+lse2", "-out", bad}, &log)
	var usage cli.UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "one per layer") {
		t.Errorf("-trained -pool post-root-mean2+lse2 on one layer: %v; want a usage error saying one pooling per layer", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-trained wrote %s although it refused the pooling (%v)", bad, err)
	}
}

// TestTrainAndEvaluate trains and evaluates on class folders: test/ labels
// come from the folder names.
func TestTrainAndEvaluate(t *testing.T) {
	dir := mnistFolder(t, 600, 200)
	// The labelled training images: move them into class folders.
	src, _ := mnist.DefaultDir()
	train, _, err := mnist.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i++ {
		name := fmt.Sprintf("%05d.png", i)
		to := filepath.Join(dir, "train", fmt.Sprint(train.Labels[i]), name)
		os.MkdirAll(filepath.Dir(to), 0o777)
		if err := os.Rename(filepath.Join(dir, "train", name), to); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	if err := run(context.Background(), []string{"-data", dir, "-kernels", "16", "-width", "9", "-epochs", "2", "-labels", "", "-out", out, "-quiet"}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"validation_accuracy"`)) || !bytes.Contains(raw, []byte(`"test_accuracy"`)) {
		t.Errorf("metrics.json lacks the validation or test accuracy")
	}
}

// TestBadFile runs the built command on a folder with one corrupt PNG: exit
// status 1, one line naming the file, nothing written; with -skip-bad the
// run goes on.
func TestBadFile(t *testing.T) {
	dir := mnistFolder(t, 60, 0)
	if err := os.WriteFile(filepath.Join(dir, "train", "00007.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o666); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "calm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(bin, "-data", dir, "-kernels", "4", "-width", "9", "-epochs", "1", "-out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	msg := strings.TrimSpace(stderr.String())
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "calm: ") || !strings.Contains(msg, "00007.png") {
		t.Errorf("exit %v, stderr %q: want status 1 and one line naming 00007.png", err, msg)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused run wrote %s", out)
	}
	err = run(context.Background(), []string{"-data", dir, "-kernels", "4", "-width", "9", "-epochs", "1", "-skip-bad", "-out", out, "-quiet"}, new(bytes.Buffer))
	if err != nil || cli.ExitCode(err) != 0 {
		t.Errorf("-skip-bad: %v", err)
	}
	raw, _ := os.ReadFile(filepath.Join(out, "metrics.json"))
	if !bytes.Contains(raw, []byte(`"skipped_files": 1`)) {
		t.Error("metrics.json does not count the skipped file")
	}
}
