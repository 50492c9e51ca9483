package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"calm/em"
	"calm/experiment"
	"calm/mnist"
)

// TestRunSmall runs the command on the first 600 MNIST images and checks
// that every output exists and parses, and that metrics.json holds what the
// README promises.
func TestRunSmall(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	err := run(context.Background(), []string{"-limit", "600", "-epochs", "2", "-kernels", "16", "-width", "12", "-batch", "256", "-out", out}, &log)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	for _, name := range []string{"kernels.png", "loglik.png", "posterior.png"} {
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
	theta, err := em.LoadTheta(filepath.Join(out, "theta.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if s := theta.Shape(); s[0] != 16 || s[1] != 1 || s[2] != 12 {
		t.Errorf("theta.npy has shape %v, want (16,1,12,12)", s)
	}
	var metrics map[string]any
	raw, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &metrics); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"loglik", "epoch_seconds", "train_accuracy", "test_accuracy", "pixel_test_accuracy",
		"images", "kernels", "width", "padding", "batch", "seed", "ops", "peak_rss_bytes", "wall_seconds"} {
		if _, ok := metrics[key]; !ok {
			t.Errorf("metrics.json lacks %q", key)
		}
	}
	if ll := metrics["loglik"].([]any); len(ll) != 2 || ll[1].(float64) < ll[0].(float64) {
		t.Errorf("loglik %v: want 2 epochs, not decreasing", ll)
	}
	if acc := metrics["test_accuracy"].(float64); acc < 0.5 {
		t.Errorf("test accuracy %v from 600 images and 16 kernels: want well above chance", acc)
	}
	var config map[string]any
	raw, err = os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	if config["kernels"].(float64) != 16 || config["limit"].(float64) != 600 {
		t.Errorf("config.json = %v, want kernels 16 and limit 600", config)
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// -init from the θ just written continues from it.
	out2 := t.TempDir()
	if err := run(context.Background(), []string{"-limit", "300", "-epochs", "1", "-eval=false", "-init", filepath.Join(out, "theta.npy"), "-out", out2, "-quiet"}, &log); err != nil {
		t.Fatalf("-init: %v", err)
	}
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
		{name: "unknown op set", args: []string{"-conv", "cudnn"}, usage: true, msg: "unknown op set"},
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
			if got := experiment.ExitCode(err); (got == 2) != tc.usage {
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

// buildCommand builds the command into a temporary directory.
func buildCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mnist")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
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

// TestExitStatus runs the built command on each kind of bad input and
// checks what a user sees: the exit status and one line on stderr that
// names the problem.
func TestExitStatus(t *testing.T) {
	bin := buildCommand(t)
	tmp := t.TempDir()
	badShape := filepath.Join(tmp, "rgb.npy")
	if err := em.SaveTheta(badShape, em.InitTheta(4, 3, 20, 1)); err != nil {
		t.Fatal(err)
	}
	nanTheta := em.InitTheta(4, 1, 20, 1)
	nanTheta.Data().([]float32)[3*400+7] = float32(math.NaN())
	nanPath := filepath.Join(tmp, "nan.npy")
	if err := em.SaveTheta(nanPath, nanTheta); err != nil {
		t.Fatal(err)
	}
	f64 := filepath.Join(tmp, "f64.npy")
	if err := os.WriteFile(f64, []byte("\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1), }"+strings.Repeat(" ", 45)+"\n"+"\x00\x00\x00\x00\x00\x00\xf0?"), 0o644); err != nil {
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
		{"zero epochs", []string{"-epochs", "0"}, 2, "-epochs 0"},
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
			cmd := exec.Command(bin, append(tc.args, "-out", out)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Errorf("%v, want exit status %d; stderr %q", err, tc.code, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "mnist: ") || !strings.Contains(msg, tc.msg) {
				t.Errorf("stderr %q, want one line starting \"mnist: \" that says %q", msg, tc.msg)
			}
			if entries, _ := os.ReadDir(out); len(entries) > 1 { // config.json at most
				t.Errorf("a failed run left %d files in its output directory", len(entries))
			}
		})
	}
}

// TestSignal interrupts the built command with SIGINT during training: it
// must exit with status 130, say how to resume, and resume to the end.
func TestSignal(t *testing.T) {
	bin := buildCommand(t)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"-limit", "3000", "-epochs", "3", "-kernels", "16", "-width", "12", "-batch", "250", "-eval=false", "-out", out}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Signal once the first epoch's checkpoint exists.
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(out, "checkpoint.json")); err == nil {
			break
		}
		if i > 6000 {
			cmd.Process.Kill()
			t.Fatal("no checkpoint after 60 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		if err == nil {
			t.Skip("the run finished before the signal arrived")
		}
		t.Fatalf("%v, want exit status 130; stderr %q", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "resume with: go run ./cmd/mnist -resume "+out) {
		t.Errorf("stderr %q does not say how to resume", stderr.String())
	}
	resume := exec.Command(bin, "-resume", out, "-quiet")
	if b, err := resume.CombinedOutput(); err != nil {
		t.Fatalf("-resume: %v\n%s", err, b)
	}
	if _, err := em.LoadTheta(filepath.Join(out, "theta.npy")); err != nil {
		t.Errorf("after -resume: %v", err)
	}
}

// TestResume interrupts a run once its second epoch's checkpoint exists,
// resumes it, and compares θ and the metrics with the same run done
// without interruption: they must be equal, bit for bit.
func TestResume(t *testing.T) {
	args := []string{"-limit", "600", "-epochs", "4", "-kernels", "8", "-width", "10", "-batch", "200", "-pixels=false", "-quiet"}
	whole := t.TempDir()
	if err := run(context.Background(), append(args, "-out", whole), new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	cut := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if raw, err := os.ReadFile(filepath.Join(cut, "checkpoint.json")); err == nil && bytes.Contains(raw, []byte(`"epoch": 2`)) {
				cancel()
			}
		}
	}()
	err := run(ctx, append(args, "-out", cut), new(bytes.Buffer))
	cancel()
	<-done
	if experiment.ExitCode(err) != 130 || !strings.Contains(err.Error(), "checkpoint of epoch") {
		t.Fatalf("interrupted run: %v (exit status %d), want an interruption (130)", err, experiment.ExitCode(err))
	}
	if _, err := os.Stat(filepath.Join(cut, "metrics.json")); !os.IsNotExist(err) {
		t.Fatalf("an interrupted run wrote metrics.json")
	}
	if err := run(context.Background(), []string{"-resume", cut, "-quiet"}, new(bytes.Buffer)); err != nil {
		t.Fatalf("-resume: %v", err)
	}
	a, _ := os.ReadFile(filepath.Join(whole, "theta.npy"))
	b, _ := os.ReadFile(filepath.Join(cut, "theta.npy"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("theta.npy of the resumed run differs from the uninterrupted run's")
	}
	metrics := func(dir string) map[string]any {
		var m map[string]any
		raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for _, timing := range []string{"epoch_seconds", "train_seconds", "eval_seconds", "wall_seconds", "peak_rss_bytes"} {
			delete(m, timing)
		}
		return m
	}
	ma, mb := metrics(whole), metrics(cut)
	ja, _ := json.Marshal(ma)
	jb, _ := json.Marshal(mb)
	if !bytes.Equal(ja, jb) {
		t.Errorf("metrics differ:\nuninterrupted %s\nresumed       %s", ja, jb)
	}
	if err := run(context.Background(), []string{"-resume", cut, "-epochs", "9"}, new(bytes.Buffer)); experiment.ExitCode(err) != 2 {
		t.Errorf("-resume with -epochs: %v, want a usage error", err)
	}
}
