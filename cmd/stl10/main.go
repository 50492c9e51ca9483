// Command stl10 trains a CALM layer on STL-10's colour images by EM, the
// paper's second experiment: kernels learned from the 5 000 labelled
// training images, or with -unlabeled from those and the 100 000 unlabelled
// ones, are pooled into features on which a softmax classifier is fitted
// (always on the 5 000 labelled images) and scored on the 8 000 test images.
//
//	go run ./cmd/stl10 -data DIR               # DIR holds the binary distribution's .bin files
//	go run ./cmd/stl10 -data DIR -unlabeled
//
// Images are streamed from disk and ZCA-whitened per image and channel as
// they are read (see package stl10). The flags are cmd/mnist's, with
// STL-10's defaults (200 kernels of 15×15, no padding, batch 200, 10
// epochs), -data required and -unlabeled added.
package main

import (
	"context"
	"errors"
	"io"

	"calm/em"
	"calm/experiment"
	"calm/graph"
	"calm/stl10"
)

func main() { experiment.Main("stl10", run) }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f := experiment.NewFlags("stl10", experiment.Defaults{Out: "out/stl10", Epochs: 10, Kernels: 200, Width: 15, Pad: 0, Batch: 200})
	unlabeled := f.FlagSet.Bool("unlabeled", false, "learn the kernels from train + unlabeled instead of the 5 000 labelled images")
	if err := f.Parse(args, stderr); err != nil {
		return err
	}
	if f.Data == "" {
		return experiment.UsageError{Err: errors.New("-data DIR is required: STL-10 cannot be downloaded here")}
	}
	s, err := f.Settings(stl10.Channels)
	if err != nil {
		return err
	}
	if err := (graph.Config{Kernels: s.Kernels, Channels: stl10.Channels, Height: stl10.Side, Width: stl10.Side,
		Size: s.Size, Pad: s.Pad, Batch: s.Batch}).Validate(); err != nil {
		return err
	}
	set, err := stl10.Load(f.Data, *unlabeled, true)
	if err != nil {
		return err
	}
	defer set.Close()
	var train em.Source = set.Train
	name := "STL-10 (labelled)"
	if *unlabeled {
		if train, err = em.Concat(set.Train, set.Unlabeled); err != nil {
			return err
		}
		name = "STL-10 (train + unlabeled)"
	}
	train = em.First(train, f.Limit)
	_, err = experiment.Run(experiment.Data{
		Name: name, Train: train, Labelled: set.Train, Labels: set.TrainLabels,
		Test: set.Test, TestLabels: set.TestLabels, Classes: stl10.Classes,
		Description: map[string]any{"data": f.Data, "limit": f.Limit, "init": f.Init, "unlabeled": *unlabeled, "zca": "per image and channel, as the reference"},
	}, f.Options(ctx, s, stderr))
	return err
}
