package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"calm/em"
	"calm/experiment"
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

// TestExitStatus builds the command and checks what a user sees: one line
// on stderr and the exit status.
func TestExitStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mnist")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-epochs", "0"}, 2},
		{[]string{"-no-such-flag"}, 2},
		{[]string{"-data", t.TempDir()}, 1},
	} {
		cmd := exec.Command(bin, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
			t.Errorf("%v: %v, want exit status %d", tc.args, err, tc.code)
		}
		if lines := strings.Count(strings.TrimSpace(stderr.String()), "\n") + 1; lines != 1 || !strings.HasPrefix(stderr.String(), "mnist: ") {
			t.Errorf("%v: stderr %q, want one line starting with \"mnist: \"", tc.args, stderr.String())
		}
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
