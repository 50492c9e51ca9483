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
// STL-10's paper preset (200 kernels of 15×15, no padding, batch 200, 10
// epochs, no pixel classifier), -data required and -unlabeled added.
package main

import (
	"context"
	"errors"
	"io"

	"calm/cmd/internal/cli"
	"calm/dataset"
	"calm/experiment"
	"calm/stl10"
)

// Presets are the command's named defaults, the first the default.
var Presets = []cli.Preset{
	{Name: "paper", Doc: "the paper's STL-10 setting: 200 kernels of 3×15×15, no padding, batch 200, 10 epochs", Flags: map[string]string{
		"kernels": "200", "width": "15", "pad": "0", "batch": "200", "epochs": "10", "pixels": "false",
	}},
}

func main() { cli.Main("stl10", run) }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f := cli.NewFlags("stl10", Presets...)
	unlabeled := f.FlagSet.Bool("unlabeled", false, "learn the kernels from train + unlabeled instead of the 5 000 labelled images")
	if err := f.Parse(args, stderr); err != nil {
		return err
	}
	if f.Data == "" {
		return cli.UsageError{Err: errors.New("-data DIR is required: STL-10 cannot be downloaded here")}
	}
	s, err := f.Settings(stl10.Channels)
	if err != nil {
		return err
	}
	// STL-10's images are 96×96×3 whatever the files hold: check the layer
	// before reading them.
	if _, _, err := s.Normalize(1, stl10.Channels, stl10.Side, stl10.Side); err != nil {
		return cli.UsageError{Err: err}
	}
	opt, err := f.Options(ctx, s, stderr)
	if err != nil {
		return err
	}
	set, err := stl10.Load(f.Data, *unlabeled, true)
	if err != nil {
		return err
	}
	defer set.Close()
	var train dataset.Source = set.Train
	name := "STL-10 (labelled)"
	if *unlabeled {
		if train, err = dataset.Concat(set.Train, set.Unlabeled); err != nil {
			return err
		}
		name = "STL-10 (train + unlabeled)"
	}
	return f.Run(experiment.Data{
		Name: name, Train: train, Labelled: set.Train, Labels: set.TrainLabels,
		Test: set.Test, TestLabels: set.TestLabels, Classes: stl10.Classes,
		Description: map[string]any{"zca": "per image and channel, as the reference"},
	}, opt)
}
