package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calm/cifar10"
	"calm/cmd/internal/cli"
	"calm/experiment"
)

// writeBoth writes n training and m test images of random smooth colour as
// the binary distribution (dir/bin) and as PNG class folders (dir/png),
// each class's images numbered in record order, as the JPEG copy of
// CIFAR-10 is.
func writeBoth(t *testing.T, n, m int) (bin, folder string) {
	t.Helper()
	root := t.TempDir()
	bin, folder = filepath.Join(root, "bin"), filepath.Join(root, "png")
	rng := rand.New(rand.NewPCG(11, 13))
	split := func(file, sub string, count int) {
		var recs []byte
		perClass := map[byte]int{}
		for i := 0; i < count; i++ {
			label := byte((i*7 + 3) % cifar10.Classes) // interleaved, as in the real files
			img := image.NewRGBA(image.Rect(0, 0, 32, 32))
			rec := []byte{label}
			planes := make([][]byte, 3)
			base := [3]float64{rng.Float64(), rng.Float64(), rng.Float64()}
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					var px [3]uint8
					for c := range px {
						v := base[c]*200 + 40*float64((x+y*int(label+1))%7)/7 + 15*rng.Float64()
						px[c] = uint8(v)
						planes[c] = append(planes[c], px[c])
					}
					img.Set(x, y, color.RGBA{px[0], px[1], px[2], 255})
				}
			}
			for _, p := range planes {
				rec = append(rec, p...)
			}
			recs = append(recs, rec...)
			path := filepath.Join(folder, sub, cifar10.ClassNames[label], fmt.Sprintf("%04d.png", perClass[label]))
			perClass[label]++
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if file == cifar10.TestFile {
			if err := os.WriteFile(filepath.Join(bin, file), recs, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		// The training records spread over the five files.
		per := count / len(cifar10.TrainFiles)
		for i, name := range cifar10.TrainFiles {
			if err := os.WriteFile(filepath.Join(bin, name), recs[i*per*cifar10.RecordSize:(i+1)*per*cifar10.RecordSize], 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	split("train", "train", n)
	split(cifar10.TestFile, "test", m)
	// Every class present in both splits, as the readers need.
	for _, sub := range []string{"train", "test"} {
		for _, name := range cifar10.ClassNames {
			if _, err := os.Stat(filepath.Join(folder, sub, name)); err != nil {
				t.Fatalf("class %s has no images in %s", name, sub)
			}
		}
	}
	return bin, folder
}

// TestBinaryAndFolder trains on the binary distribution and on the same
// images as PNG class folders: the kernels, the whitening and every
// accuracy must be the same bit for bit, since both readers order the
// images class by class.
func TestBinaryAndFolder(t *testing.T) {
	bin, folder := writeBoth(t, 250, 60)
	a, b := t.TempDir(), t.TempDir()
	flags := []string{"-kernels", "12", "-whiten-patches", "4", "-epochs", "1", "-batch", "40", "-quiet", "-pool", "post-root-mean2,tri-mean2", "-C", "1"}
	for _, run1 := range []struct{ data, out string }{{bin, a}, {folder, b}} {
		if err := run(context.Background(), append(flags, "-data", run1.data, "-out", run1.out), new(bytes.Buffer)); err != nil {
			t.Fatalf("%s: %v", run1.data, err)
		}
	}
	for _, file := range []string{"theta-1.npy", "whitening.npy"} {
		fa, err := os.ReadFile(filepath.Join(a, file))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := os.ReadFile(filepath.Join(b, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fa, fb) {
			t.Errorf("%s differs between the binary distribution and the image folder", file)
		}
	}
	var ma, mb experiment.Metrics
	for _, m := range []struct {
		dir string
		m   *experiment.Metrics
	}{{a, &ma}, {b, &mb}} {
		raw, err := os.ReadFile(filepath.Join(m.dir, "metrics.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, m.m); err != nil {
			t.Fatal(err)
		}
	}
	if ma.ValidationAccuracy == nil || ma.TestAccuracy == nil || mb.ValidationAccuracy == nil || mb.TestAccuracy == nil {
		t.Fatal("a run recorded no accuracy")
	}
	if *ma.ValidationAccuracy != *mb.ValidationAccuracy || *ma.TestAccuracy != *mb.TestAccuracy {
		t.Errorf("accuracies: validation %v and %v, test %v and %v; want the same", *ma.ValidationAccuracy, *mb.ValidationAccuracy, *ma.TestAccuracy, *mb.TestAccuracy)
	}
	for _, file := range []string{"kernels-1.png", "loglik.png", "epochs.png", "posterior.png"} {
		if _, err := os.Stat(filepath.Join(a, file)); err != nil {
			t.Errorf("the run wrote no %s: %v", file, err)
		}
	}
}

// TestBadData: no -data is a usage error; a folder of neither format, a
// truncated batch file and a folder of the wrong image size each fail
// with a line naming what is wrong.
func TestBadData(t *testing.T) {
	err := run(context.Background(), []string{"-quiet"}, new(bytes.Buffer))
	var ue cli.UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "-data") {
		t.Errorf("no -data: %v, want a usage error naming -data", err)
	}
	bin, _ := writeBoth(t, 50, 20)
	path := filepath.Join(bin, "data_batch_2.bin")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw[:len(raw)-5], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ data, want string }{
		{bin, "data_batch_2.bin"},
		{t.TempDir(), "train"},
	} {
		err := run(context.Background(), []string{"-quiet", "-data", c.data, "-out", t.TempDir()}, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("-data %s: %v, want one line naming %s", c.data, err, c.want)
		}
	}
}

// TestDeep runs the deep preset, made small: two layers learned by EM on
// whitened patches, each layer's kernels drawn (the second's from the
// images as they are), and both layers' features scored.
func TestDeep(t *testing.T) {
	bin, _ := writeBoth(t, 250, 60)
	out := t.TempDir()
	args := []string{"-preset", "deep", "-data", bin, "-out", out, "-quiet",
		"-whiten-patches", "4", "-layers", "8x1:post-root+max3,6x3", "-batch", "50", "-C", "1"}
	if err := run(context.Background(), args, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"kernels-1.png", "kernels-2.png", "theta-1.npy", "theta-2.npy", "loglik.png", "posterior.png"} {
		if _, err := os.Stat(filepath.Join(out, file)); err != nil {
			t.Errorf("the run wrote no %s: %v", file, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m experiment.Metrics
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ValidationAccuracy == nil || m.TestAccuracy == nil {
		t.Fatal("the run recorded no accuracy")
	}
	if len(m.Layers) != 2 {
		t.Errorf("metrics of %d layers, want 2", len(m.Layers))
	}
}
