package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"calm/cmd/internal/cli"
	"calm/dataset"
	"calm/em"
	"calm/mnist"
	"calm/npy"

	"gorgonia.org/tensor"
)

// TestMain doubles as a launcher: with CALM_TEST_LIMITS set (a resource,
// "=", a value; for example "fsize=8192") it sets that limit and replaces
// itself with the command line in CALM_TEST_EXEC, so that tests can run
// the built command under a file-size or address-space limit without a
// shell.
func TestMain(m *testing.M) {
	if limits := os.Getenv("CALM_TEST_LIMITS"); limits != "" {
		args := strings.Split(os.Getenv("CALM_TEST_EXEC"), "\x1f")
		for _, l := range strings.Split(limits, ",") {
			name, v, _ := strings.Cut(l, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			res := map[string]int{"fsize": syscall.RLIMIT_FSIZE, "as": syscall.RLIMIT_AS}[name]
			if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
				fmt.Fprintln(os.Stderr, "setrlimit:", err)
				os.Exit(99)
			}
		}
		err := syscall.Exec(args[0], args, os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(99)
	}
	os.Exit(m.Run())
}

// limited returns the command bin with args, run under the given limits.
func limited(t *testing.T, limits, bin string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "CALM_TEST_LIMITS="+limits, "CALM_TEST_EXEC="+strings.Join(append([]string{bin}, args...), "\x1f"))
	return cmd
}

func readMetrics(t *testing.T, dir string) map[string]any {
	t.Helper()
	var m map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunSmall runs the command on the first 600 MNIST images and checks
// that every output exists and parses, and that metrics.json holds what the
// README promises.
func TestRunSmall(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	err := run(context.Background(), []string{"-limit", "600", "-epochs", "2", "-kernels", "16", "-width", "12", "-batch", "256",
		"-pool", "lse2,image", "-labels", "100,300", "-pixels", "-features", "-out", out}, &log)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	for _, name := range []string{"kernels-1.png", "loglik.png", "posterior.png", "labels.png"} {
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
	if s := theta.Shape(); s[0] != 16 || s[1] != 1 || s[2] != 12 {
		t.Errorf("theta-1.npy has shape %v, want (16,1,12,12)", s)
	}
	metrics := readMetrics(t, out)
	for _, key := range []string{"layers", "train_accuracy", "test_accuracy", "pixel_test_accuracy", "evaluations", "labels",
		"images", "batch", "seed", "ops", "init_from",
		"train_seconds", "features_seconds", "classifier_seconds", "peak_rss_bytes", "wall_seconds"} {
		if _, ok := metrics[key]; !ok {
			t.Errorf("metrics.json lacks %q", key)
		}
	}
	layer := metrics["layers"].([]any)[0].(map[string]any)
	for _, key := range []string{"kernels", "width", "pad", "input", "model", "loglik", "epoch_seconds", "status", "distinct_kernels", "train_seconds"} {
		if _, ok := layer[key]; !ok {
			t.Errorf("metrics.json's layer lacks %q", key)
		}
	}
	if ll := layer["loglik"].([]any); len(ll) != 2 || ll[1].(float64) < ll[0].(float64) {
		t.Errorf("loglik %v: want 2 epochs, not decreasing", ll)
	} else if final, ok := layer["final_loglik"].(float64); !ok || final < ll[1].(float64) {
		t.Errorf("final_loglik %v after loglik %v: want the trained kernels' LL, not below the last epoch's", layer["final_loglik"], ll)
	}
	if acc := metrics["test_accuracy"].(float64); acc < 0.5 {
		t.Errorf("test accuracy %v from 600 images and 16 kernels: want well above chance", acc)
	}
	var config map[string]any
	raw, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	layers, _ := config["layers"].([]any)
	command := fmt.Sprint(config["command"])
	if len(layers) != 1 || layers[0].(map[string]any)["kernels"] != 16.0 || !strings.Contains(command, "-limit=600") || config["init_from"] != "kmeans++" {
		t.Errorf("config.json = %v, want one layer of 16 kernels, -limit=600 in the command and the default preset's kmeans++", config)
	}
	for _, name := range []string{"features-lse2-train.npy", "features-image-test.npy", "labels-train.npy"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestInit continues from a θ file: the first epoch's LL must be that of
// the file's θ, computed here with em.Train on the same images.
func TestInit(t *testing.T) {
	out := t.TempDir()
	if err := run(context.Background(), []string{"-limit", "300", "-epochs", "1", "-kernels", "6", "-width", "9", "-eval=false", "-out", out, "-quiet"}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	thetaPath := filepath.Join(out, "theta-1.npy")
	out2 := t.TempDir()
	// The paper's model on the raw images, as em.Train below.
	if err := run(context.Background(), []string{"-limit", "300", "-epochs", "1", "-pad", "2", "-model", "image", "-whiten", "0", "-eval=false", "-init", thetaPath, "-out", out2, "-quiet"}, new(bytes.Buffer)); err != nil {
		t.Fatalf("-init: %v", err)
	}
	theta, err := em.LoadTheta(thetaPath)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := mnist.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	train, _, err := mnist.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dataset.NewImages(train.Pixels[:300*784], 300, 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	want, err := em.Train(src, em.Settings{Pad: 2, MaxEpochs: 1, Init: theta})
	if err != nil {
		t.Fatal(err)
	}
	got := readMetrics(t, out2)["layers"].([]any)[0].(map[string]any)["loglik"].([]any)[0].(float64)
	if got != want.LogLik[0] {
		t.Errorf("-init: first LL %v, the file's θ gives %v", got, want.LogLik[0])
	}
}

// TestPresets checks that each preset sets its own layers and training
// (the values README.md gives), and that a flag given beside a preset wins.
func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want map[string]any
	}{
		{nil, map[string]any{"kernels": 128.0, "width": 9.0, "pad": 0.0, "max_epochs": 5.0, "init_from": "kmeans++", "model": "patch",
			"pools": []any{"post-root-mean3"}, "choose_c": true, "c_grid": []any{0.3, 0.1, 0.03}}},
		{[]string{"-preset", "paper"}, map[string]any{"kernels": 64.0, "width": 20.0, "pad": 2.0, "batch": 1000.0, "max_epochs": 15.0,
			"init_from": "normal", "model": "image", "mixing": false, "pools": []any{"image"}, "c": 1.0}},
		{[]string{"-preset", "deep"}, map[string]any{"kernels": 64.0, "width": 5.0, "pad": 2.0, "batch": 500.0, "max_epochs": 1.0,
			"init_from": "kmeans++", "model": "patch", "layer_pools": []any{[]any{"post-root-mean-pyramid3", "lse-pyramid3"}}}},
		{[]string{"-preset", "deep-wide"}, map[string]any{"kernels": 256.0, "width": 9.0, "pad": 0.0, "batch": 500.0, "max_epochs": 1.0,
			"init_from": "kmeans++", "model": "patch", "whiten": 9.0, "layer_pools": []any{[]any{"post-root-mean-pyramid3", "lse-pyramid3"}}}},
		{[]string{"-preset", "wide"}, map[string]any{"kernels": 256.0, "width": 9.0, "pad": 0.0, "max_epochs": 3.0, "init_from": "kmeans++", "model": "patch",
			"whiten": 9.0, "pools": []any{"post-root-mean-pyramid3"}, "choose_c": true}},
		{[]string{"-preset", "paper", "-kernels", "8", "-epochs", "1"}, map[string]any{"kernels": 8.0, "max_epochs": 1.0, "init_from": "normal"}},
	} {
		out := t.TempDir()
		args := append(tc.args, "-limit", "1000", "-eval=false", "-out", out, "-quiet")
		// Only config.json is checked: stop the run at once.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := run(ctx, args, new(bytes.Buffer))
		if cli.ExitCode(err) != 130 {
			t.Fatalf("%v: %v, want an interrupted run", tc.args, err)
		}
		var config map[string]any
		raw, err := os.ReadFile(filepath.Join(out, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &config); err != nil {
			t.Fatal(err)
		}
		layers := config["layers"].([]any)
		for k, v := range tc.want {
			got, _ := json.Marshal(config[k])
			if slices.Contains([]string{"kernels", "width", "pad", "max_epochs", "model"}, k) {
				k = "layers[0]." + k // a layer's setting, in its record
				got, _ = json.Marshal(layers[0].(map[string]any)[strings.TrimPrefix(k, "layers[0].")])
			}
			if string(got) != mustJSON(v) {
				t.Errorf("%v: config %s = %s, want %s", tc.args, k, got, mustJSON(v))
			}
		}
		for _, l := range layers {
			if e := l.(map[string]any)["max_epochs"].(float64); e < 1 {
				t.Errorf("%v: a layer trains %v epochs of EM; every preset runs EM", tc.args, e)
			}
		}
	}
}

// TestDeepPreset runs the deep preset as it stands, on the first 1 200
// training images: two layers, each trained by EM (a log-likelihood per
// epoch), both layers' features side by side, each layer pooled its own
// way, C chosen by validation from the grid.
func TestDeepPreset(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	if err := run(context.Background(), []string{"-preset", "deep", "-limit", "1200", "-labels", "", "-pixels=false", "-out", out}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	m := readMetrics(t, out)
	layers := m["layers"].([]any)
	if len(layers) != 2 {
		t.Fatalf("%d layers, want 2", len(layers))
	}
	for l, layer := range layers {
		ll := layer.(map[string]any)["loglik"].([]any)
		if len(ll) < 1 {
			t.Errorf("layer %d trained no EM epoch", l+1)
		}
		// The curve of loglik.png: each epoch's LL, then the trained kernels'.
		final, ok := layer.(map[string]any)["final_loglik"].(float64)
		if !ok {
			t.Errorf("layer %d: no LL of the trained kernels in metrics.json", l+1)
		}
		ll = append(ll, final)
		for e := 1; e < len(ll); e++ {
			if ll[e].(float64) < ll[e-1].(float64) {
				t.Errorf("layer %d: LL %v (the last: the trained kernels') decreases", l+1, ll)
			}
		}
	}
	if n := strings.Count(log.String(), "trained    LL"); n != 2 {
		t.Errorf("the progress shows the LL of the trained kernels %d times, want once per layer:\n%s", n, log.String())
	}
	best, main := -1.0, ""
	var names []string
	for _, ev := range m["evaluations"].([]any) {
		e := ev.(map[string]any)
		names = append(names, e["pooling"].(string))
		// The grid of 5, and past its edge while the edge validates best.
		if grid := e["c_grid"].([]any); len(e["validation_by_c"].([]any)) != len(grid) || len(grid) < 5 || grid[0].(float64) != 1 || grid[4].(float64) != 0.01 {
			t.Errorf("%s: C chosen from %v, want the grid of 5 first", e["pooling"], e["c_grid"])
		}
		if v := e["validation_accuracy"].(float64); v > best {
			best, main = v, e["pooling"].(string)
		}
	}
	if !slices.Equal(names, []string{"post-root-mean-pyramid3+lse-pyramid3"}) || m["pooling"] != main {
		t.Errorf("feature sets %v, main %v: want post-root-mean-pyramid3+lse-pyramid3 alone, the main one", names, m["pooling"])
	}
	if d := m["evaluations"].([]any)[0].(map[string]any)["features"]; d != float64(64*14+128*14) {
		t.Errorf("%v features, want layer 1's 64 kernels and layer 2's 128 over 14 cells each", d)
	}
	if acc := m["test_accuracy"].(float64); acc < 0.85 {
		t.Errorf("test accuracy %v from 1 200 images: want above 0.85", acc)
	}
	if _, err := os.Stat(filepath.Join(out, "loglik.png")); err != nil {
		t.Error(err)
	}
}

// TestWholeImageKernel trains kernels as large as the image (the paper's
// single-patch case) without evaluating: the default pooling's 3×3 grid,
// which one position cannot hold, must not stop a run that pools nothing.
func TestWholeImageKernel(t *testing.T) {
	out := t.TempDir()
	err := run(context.Background(), []string{"-kernels", "10", "-width", "28", "-pad", "0", "-eval=false", "-limit", "300", "-epochs", "1", "-whiten", "0", "-out", out, "-quiet"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if ll := readMetrics(t, out)["layers"].([]any)[0].(map[string]any)["loglik"].([]any); len(ll) != 1 {
		t.Errorf("loglik %v, want one epoch", ll)
	}
	err = run(context.Background(), []string{"-kernels", "10", "-width", "28", "-pad", "0", "-limit", "300", "-epochs", "1", "-out", t.TempDir(), "-quiet"}, new(bytes.Buffer))
	if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "-pool image") {
		t.Errorf("evaluating a 3×3 grid of one position: %v, want exit status 2 saying -pool image", err)
	}
}

type meanSD struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

// TestSeeds repeats a small run over two seeds: each seed's run has its
// own directory, and seeds.json holds the mean and the standard deviation
// of the accuracies, recomputed here from the two runs' metrics.
func TestSeeds(t *testing.T) {
	out := t.TempDir()
	err := run(context.Background(), []string{"-limit", "600", "-epochs", "1", "-kernels", "8", "-width", "9", "-pool", "lse2,image", "-labels", "",
		"-pixels=false", "-epoch-curve=false", "-seed", "3", "-seeds", "2", "-out", out, "-quiet"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Seeds       []uint64 `json:"seeds"`
		Main        string   `json:"main"`
		FeatureSets []struct {
			Pooling    string `json:"pooling"`
			Validation meanSD `json:"validation_accuracy"`
			Test       meanSD `json:"test_accuracy"`
		} `json:"feature_sets"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "seeds.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sum.Seeds, []uint64{3, 4}) || len(sum.FeatureSets) != 2 {
		t.Fatalf("seeds.json: %s", raw)
	}
	var val, test [2][2]float64 // feature set, seed
	for s, seed := range []string{"seed-3", "seed-4"} {
		m := readMetrics(t, filepath.Join(out, seed))
		if m["seed"].(float64) != float64(3+s) || m["validation_images"].(float64) != 100 {
			t.Errorf("%s: seed %v, validation images %v; want seed %d, a sixth of 600", seed, m["seed"], m["validation_images"], 3+s)
		}
		for i, ev := range m["evaluations"].([]any) {
			e := ev.(map[string]any)
			val[i][s], test[i][s] = e["validation_accuracy"].(float64), e["test_accuracy"].(float64)
		}
	}
	best, main := -1.0, ""
	for i, fs := range sum.FeatureSets {
		mean := (val[i][0] + val[i][1]) / 2
		sd := math.Abs(val[i][0]-val[i][1]) / math.Sqrt2 // the sample sd of two values
		if math.Abs(fs.Validation.Mean-mean) > 1e-12 || math.Abs(fs.Validation.SD-sd) > 1e-12 || math.Abs(fs.Test.Mean-(test[i][0]+test[i][1])/2) > 1e-12 {
			t.Errorf("%s: validation %v ± %v, test %v; want %v ± %v, %v", fs.Pooling, fs.Validation.Mean, fs.Validation.SD, fs.Test.Mean, mean, sd, (test[i][0]+test[i][1])/2)
		}
		if mean > best {
			best, main = mean, fs.Pooling
		}
	}
	if sum.Main != main {
		t.Errorf("main feature set %s; %s validates best on average", sum.Main, main)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRunErrors(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		usage bool // exit status 2
		msg   string
	}{
		{name: "unknown flag", args: []string{"-nope"}, usage: true, msg: "flag provided but not defined"},
		{name: "zero kernels", args: []string{"-kernels", "0"}, usage: true, msg: "positive"},
		{name: "kernel wider than padded image", args: []string{"-width", "40", "-pad", "2"}, usage: true, msg: "larger than the padded image"},
		{name: "unknown op set", args: []string{"-ops", "cudnn"}, usage: true, msg: "unknown op set"},
		{name: "unknown preset", args: []string{"-preset", "best"}, usage: true, msg: "-preset"},
		{name: "unknown pooling", args: []string{"-pool", "sum3"}, usage: true, msg: "unknown pooling"},
		{name: "unknown pooling of a layer", args: []string{"-pool", "lse3,post-mean3+sum3"}, usage: true, msg: "unknown pooling"},
		{name: "per-layer poolings, two for one layer", args: []string{"-pool", "lse3,post-mean3+lse3"}, usage: true, msg: "one per layer"},
		{name: "unknown init", args: []string{"-init-from", "svd"}, usage: true, msg: "unknown initialisation"},
		{name: "bad repair", args: []string{"-repair-cosine", "2"}, usage: true, msg: "cosine in [0, 1]"},
		{name: "missing data", args: []string{"-data", "/nonexistent"}, msg: "no train-images"},
		{name: "missing init", args: []string{"-init", "/nonexistent.npy"}, msg: "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			err := run(context.Background(), append(tc.args, "-out", out, "-quiet"), new(bytes.Buffer))
			if err == nil {
				t.Fatal("no error")
			}
			if got := cli.ExitCode(err); (got == 2) != tc.usage {
				t.Errorf("exit status %d for %q", got, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a failed run wrote %d files", len(entries))
			}
		})
	}
}

// buildCommand builds the command once for the tests that run it.
var buildCommand = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "calm-mnist")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mnist")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func built(t *testing.T) string {
	t.Helper()
	bin, err := buildCommand()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// idxDir writes MNIST-format files of 28×28 images into a new directory;
// change edits the four files' bytes (images, labels, test images, test
// labels) before they are written.
func idxDir(t *testing.T, change func(files [][]byte)) string {
	t.Helper()
	file := func(header []uint32, body int) []byte {
		b := new(bytes.Buffer)
		binary.Write(b, binary.BigEndian, header)
		b.Write(make([]byte, body))
		return b.Bytes()
	}
	files := [][]byte{
		file([]uint32{0x803, 20, 28, 28}, 20*784), file([]uint32{0x801, 20}, 20),
		file([]uint32{0x803, 10, 28, 28}, 10*784), file([]uint32{0x801, 10}, 10),
	}
	change(files)
	dir := t.TempDir()
	for i, name := range mnist.Files {
		if err := os.WriteFile(filepath.Join(dir, name), files[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// exitOf runs cmd and returns its exit status and stderr.
func exitOf(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("%v: %v", cmd.Args, err)
	return 0, ""
}

// oneLine fails the test unless msg is one line starting "mnist: " that
// says want.
func oneLine(t *testing.T, msg, want string) {
	t.Helper()
	msg = strings.TrimSpace(msg)
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "mnist: ") || !strings.Contains(msg, want) {
		t.Errorf("stderr %q, want one line starting \"mnist: \" that says %q", msg, want)
	}
}

// TestExitStatus runs the built command on each kind of bad input and
// checks what a user sees: the exit status and one line on stderr that
// names the problem.
func TestExitStatus(t *testing.T) {
	bin := built(t)
	tmp := t.TempDir()
	badShape := filepath.Join(tmp, "rgb.npy")
	if err := saveTheta(badShape, em.InitTheta(4, 3, 20, 1)); err != nil {
		t.Fatal(err)
	}
	nanTheta := em.InitTheta(4, 1, 20, 1)
	nanTheta.Data().([]float32)[3*400+7] = float32(math.NaN())
	nanPath := filepath.Join(tmp, "nan.npy")
	if err := saveTheta(nanPath, nanTheta); err != nil {
		t.Fatal(err)
	}
	f64 := filepath.Join(tmp, "f64.npy")
	if err := os.WriteFile(f64, []byte("\x93NUMPY\x01\x00o\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1), }"+strings.Repeat(" ", 45)+"\n"+"\x00\x00\x00\x00\x00\x00\xf0?"), 0o644); err != nil {
		t.Fatal(err)
	}
	small := []string{"-epochs", "1", "-eval=false"}
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad flag", []string{"-no-such-flag"}, 2, "flag provided but not defined"},
		{"negative epochs", []string{"-epochs", "-2"}, 2, "-epochs -2"},
		{"kernel wider than the padded image", []string{"-width", "33"}, 2, "larger than the padded image"},
		{"missing directory", []string{"-data", filepath.Join(tmp, "none")}, 1, "no train-images-idx3-ubyte"},
		{"wrong magic", []string{"-data", idxDir(t, func(f [][]byte) { f[0][3] = 4 })}, 1, "magic number"},
		{"truncated images", []string{"-data", idxDir(t, func(f [][]byte) { f[2] = f[2][:1000] })}, 1, "unexpected EOF"},
		{"labels and images disagree", []string{"-data", idxDir(t, func(f [][]byte) { f[1] = f[1][:len(f[1])-1]; f[1][7] = 19 })}, 1, "20 images but"},
		{"unreadable file", []string{"-data", idxDir(t, func(f [][]byte) {}), "-init", tmp}, 1, "is a directory"},
		{"-init of the wrong shape", append([]string{"-init", badShape}, small...), 1, "3 channels"},
		{"-init of the wrong dtype", append([]string{"-init", f64}, small...), 1, "dtype <f8"},
		{"-init holding NaN", append([]string{"-init", nanPath, "-data", idxDir(t, func(f [][]byte) {})}, small...), 1, "NaN in kernel 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			code, stderr := exitOf(t, exec.Command(bin, append(tc.args, "-out", out)...))
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr %q", code, tc.code, stderr)
			}
			oneLine(t, stderr, tc.msg)
			if entries, _ := os.ReadDir(out); len(entries) > 0 {
				t.Errorf("a failed run left %d files in its output directory", len(entries))
			}
		})
	}
}

// trigger is a log writer (a run's stderr) that calls do, once, when the
// log first holds text: a progress line says an epoch ended, and the
// checkpointer records each epoch before the progress line does, so the
// checkpoint of that epoch is on disk by then.
type trigger struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	text string
	do   func()
	done bool
}

func (w *trigger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.text) {
		w.do()
		w.done = true
	}
	return len(p), nil
}

func (w *trigger) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// interruptAt returns the stderr of cmd that sends it SIGINT once text
// appears.
func interruptAt(cmd *exec.Cmd, text string) *trigger {
	return &trigger{text: text, do: func() { cmd.Process.Signal(os.Interrupt) }}
}

// patience bounds the runs the tests interrupt: they are far too long to
// end on their own, so one that never prints the line the test waits for
// (a changed progress format) is killed and the test fails, instead of
// running all its epochs.
const patience = 3 * time.Minute

// command returns bin with args, killed after patience.
func command(t *testing.T, bin string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return exec.CommandContext(ctx, bin, args...)
}

// TestResume interrupts a run once its second epoch is done, resumes it,
// and compares θ and the metrics with the same run done without
// interruption: they must be equal, bit for bit, by batch EM, by stepwise
// EM with annealing and with a learned variance, shared or one per kernel
// (whose flags -resume must read back).
func TestResume(t *testing.T) {
	args := []string{"-limit", "600", "-epochs", "4", "-kernels", "8", "-width", "10", "-batch", "200", "-pixels=false",
		"-mixing", "-repair-count", "1", "-repair-cosine", "0.95"}
	t.Run("batch", func(t *testing.T) { testResume(t, args) })
	t.Run("stepwise", func(t *testing.T) { testResume(t, append(slices.Clone(args), "-stepwise", "0.7", "-anneal", "0.5")) })
	t.Run("variance", func(t *testing.T) { testResume(t, append(slices.Clone(args), "-model", "patch", "-learn-variance")) })
	t.Run("kernel variances", func(t *testing.T) { testResume(t, append(slices.Clone(args), "-model", "patch", "-kernel-variances")) })
}

func testResume(t *testing.T, args []string) {
	whole := t.TempDir()
	if err := run(context.Background(), append(args, "-out", whole, "-quiet"), new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	cut := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := run(ctx, append(args, "-out", cut), &trigger{text: "epoch  2/4", do: cancel})
	if cli.ExitCode(err) != 130 || !strings.Contains(err.Error(), "checkpoint of layer 1, epoch 2") {
		t.Fatalf("interrupted run: %v (exit status %d), want an interruption (130) after epoch 2", err, cli.ExitCode(err))
	}
	if _, err := os.Stat(filepath.Join(cut, "metrics.json")); !os.IsNotExist(err) {
		t.Fatalf("an interrupted run wrote metrics.json")
	}
	if err := run(context.Background(), []string{"-resume", cut, "-quiet"}, new(bytes.Buffer)); err != nil {
		t.Fatalf("-resume: %v", err)
	}
	a, _ := os.ReadFile(filepath.Join(whole, "theta-1.npy"))
	b, _ := os.ReadFile(filepath.Join(cut, "theta-1.npy"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("theta-1.npy of the resumed run differs from the uninterrupted run's")
	}
	model := func(dir string) string {
		var m map[string]any
		raw, err := os.ReadFile(filepath.Join(dir, em.ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for _, l := range m["layers"].([]any) {
			delete(l.(map[string]any), "epoch_seconds")
		}
		return mustJSON(m)
	}
	if a, b := model(whole), model(cut); a != b {
		t.Errorf("model.json differs:\nuninterrupted %s\nresumed       %s", a, b)
	}
	metrics := func(dir string) string {
		m := readMetrics(t, dir)
		for _, timing := range []string{"train_seconds", "features_seconds", "classifier_seconds", "wall_seconds", "peak_rss_bytes"} {
			delete(m, timing)
		}
		for _, l := range m["layers"].([]any) {
			delete(l.(map[string]any), "epoch_seconds")
			delete(l.(map[string]any), "train_seconds")
		}
		for _, ev := range m["evaluations"].([]any) {
			delete(ev.(map[string]any), "classifier_seconds")
		}
		return mustJSON(m)
	}
	if a, b := metrics(whole), metrics(cut); a != b {
		t.Errorf("metrics differ:\nuninterrupted %s\nresumed       %s", a, b)
	}
	if err := run(context.Background(), []string{"-resume", cut, "-epochs", "9"}, new(bytes.Buffer)); cli.ExitCode(err) != 2 {
		t.Errorf("-resume with -epochs: %v, want a usage error", err)
	}
}

// TestSignal interrupts the built command with SIGINT during training: it
// must exit with status 130, say how to resume, and resume to the end. The
// run is far too long to end before the signal: if it does, the test fails.
func TestSignal(t *testing.T) {
	bin := built(t)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"-limit", "3000", "-epochs", "500", "-kernels", "16", "-width", "12", "-batch", "250", "-eval=false", "-out", out}
	cmd := command(t, bin, args...)
	stderr := interruptAt(cmd, "epoch  1/500")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("%v, want exit status 130; stderr %q", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "resume with: go run ./cmd/mnist -resume "+out) {
		t.Errorf("stderr %q does not say how to resume", stderr.String())
	}
	cp, err := em.LoadCheckpoint(filepath.Join(out, "layer-1"))
	if err != nil || cp.Epoch < 1 {
		t.Fatalf("checkpoint after the signal: %v, %v", cp, err)
	}
}

// TestFaults runs the built command into faults a user meets: a file-size
// limit while the next checkpoint is written, checkpoints that are
// corrupt or do not fit, a second run in the same directory, and a batch
// that cannot fit in an address-space limit. Each must end with one line
// that says what happened and leave the previous checkpoint as it was.
func TestFaults(t *testing.T) {
	bin := built(t)
	// A run of six epochs, interrupted once the first is done. The signal
	// lands in whichever epoch the run has reached by then (a loaded
	// machine may finish another one first): each case below works from
	// the checkpoint the run left, whichever epoch it holds.
	const epochs = 6
	args := []string{"-limit", "400", "-epochs", strconv.Itoa(epochs), "-kernels", "16", "-width", "12", "-batch", "200", "-eval=false"}
	type stopped struct {
		dir   string // the layer's checkpoint directory
		theta string // the checkpoint's θ file
		epoch int
	}
	interrupted := func(t *testing.T) stopped {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		cmd := command(t, bin, append(args, "-out", out)...)
		cmd.Stderr = interruptAt(cmd, fmt.Sprintf("epoch  1/%d", epochs))
		if err := cmd.Run(); err == nil {
			t.Fatal("the run ended before the signal")
		}
		dir := filepath.Join(out, "layer-1")
		cp, err := em.LoadCheckpoint(dir)
		if err != nil || cp.Epoch < 1 || cp.Epoch >= epochs {
			t.Fatalf("checkpoint after the signal: epoch %v, %v; want one of 1 to %d", cp.Epoch, err, epochs-1)
		}
		return stopped{dir: dir, theta: filepath.Join(dir, fmt.Sprintf("checkpoint-%d.npy", cp.Epoch)), epoch: cp.Epoch}
	}
	checkpoint := func(t *testing.T, s stopped) string {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(s.dir, em.CheckpointFile))
		if err != nil {
			t.Fatal(err)
		}
		theta, err := os.ReadFile(s.theta)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw) + string(theta)
	}

	t.Run("file-size limit", func(t *testing.T) {
		s := interrupted(t)
		out := filepath.Dir(s.dir)
		before := checkpoint(t, s)
		// θ of 16×12×12 floats is 9 344 bytes: the next checkpoint cannot
		// be written under 8 KiB.
		code, stderr := exitOf(t, limited(t, "fsize=8192", bin, "-resume", out, "-quiet"))
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		oneLine(t, stderr, fmt.Sprintf("checkpoint-%d.npy: file too large", s.epoch+1))
		if after := checkpoint(t, s); after != before {
			t.Error("the failed run changed the last checkpoint")
		}
		if tmp, _ := filepath.Glob(filepath.Join(s.dir, ".*tmp*")); len(tmp) != 0 {
			t.Errorf("temporary files left: %v", tmp)
		}
		// Without the limit it goes on to the end.
		if code, stderr := exitOf(t, exec.Command(bin, "-resume", out, "-quiet")); code != 0 {
			t.Errorf("resume without the limit: status %d, %s", code, stderr)
		}
	})
	for _, tc := range []struct {
		name   string
		change func(s stopped) error
		msg    string
	}{
		{"checkpoint.json that does not parse", func(s stopped) error {
			return os.WriteFile(filepath.Join(s.dir, em.CheckpointFile), []byte(`{"epoch": 1, "theta": `), 0o644)
		}, "checkpoint.json: unexpected end of JSON"},
		{"θ of another shape", func(s stopped) error {
			return saveTheta(s.theta, em.InitTheta(16, 1, 9, 1))
		}, "kernels of shape"},
		{"data of another size", func(s stopped) error {
			raw, err := os.ReadFile(filepath.Join(s.dir, em.CheckpointFile))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(s.dir, em.CheckpointFile), bytes.Replace(raw, []byte(`"images": 400`), []byte(`"images": 500`), 1), 0o644)
		}, "taken on 500 images, the run has 400"},
		{"truncated θ", func(s stopped) error {
			return os.Truncate(s.theta, 1000)
		}, ""}, // the message names the file: filled in below
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := interrupted(t)
			out := filepath.Dir(s.dir)
			if err := tc.change(s); err != nil {
				t.Fatal(err)
			}
			before := checkpoint(t, s)
			code, stderr := exitOf(t, exec.Command(bin, "-resume", out))
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			msg := tc.msg
			if msg == "" {
				msg = filepath.Base(s.theta)
			}
			oneLine(t, stderr, msg)
			if after := checkpoint(t, s); after != before {
				t.Error("the refused resume changed the checkpoint")
			}
			if _, err := os.Stat(filepath.Join(out, em.ModelFile)); !os.IsNotExist(err) {
				t.Error("the refused resume wrote the model")
			}
		})
	}

	t.Run("two runs in one directory", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		first := command(t, bin, "-limit", "3000", "-epochs", "500", "-kernels", "16", "-width", "12", "-eval=false", "-out", out)
		started := make(chan struct{})
		first.Stderr = &trigger{text: "epoch  1/500", do: func() { close(started) }}
		if err := first.Start(); err != nil {
			t.Fatal(err)
		}
		defer first.Process.Kill()
		select {
		case <-started:
		case <-time.After(patience):
			t.Fatal("the first run never printed its first epoch")
		}
		code, stderr := exitOf(t, exec.Command(bin, append(args, "-out", out)...))
		if code != 1 {
			t.Errorf("second run: exit status %d, want 1", code)
		}
		oneLine(t, stderr, fmt.Sprintf("being written by the run of process %d", first.Process.Pid))
		first.Process.Signal(os.Interrupt)
		first.Wait()
	})

	t.Run("batch beyond an address-space limit", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		big := []string{"-kernels", "256", "-limit", "6000", "-epochs", "1", "-eval=false", "-quiet", "-out", out}
		code, stderr := exitOf(t, limited(t, "as=3000000000", bin, append(big, "-batch", "6000")...))
		if code != 2 {
			t.Errorf("exit status %d, want 2", code)
		}
		oneLine(t, stderr, "(address-space limit); use -batch")
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Error("the refused run created its output directory")
		}
		// The batch it names must run under the same limit.
		var batch int
		if _, err := fmt.Sscanf(stderr[strings.Index(stderr, "use -batch"):], "use -batch %d", &batch); err != nil {
			t.Fatalf("no batch size in %q", stderr)
		}
		if code, stderr := exitOf(t, limited(t, "as=3000000000", bin, append(big, "-batch", strconv.Itoa(batch))...)); code != 0 {
			t.Errorf("-batch %d under the same limit: exit status %d, %s", batch, code, stderr)
		}
	})
}

// saveTheta writes kernels as a .npy file, as -init reads them.
func saveTheta(path string, theta *tensor.Dense) error {
	var b bytes.Buffer
	if err := npy.Encode(&b, theta.Data().([]float32), theta.Shape()...); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o666)
}
