// Command cifar10 trains CALM layers by EM on CIFAR-10 and evaluates their
// features, as cmd/mnist does on MNIST.
//
//	go run ./cmd/cifar10 -data DIR                 # the colour preset, into out/cifar10
//	go run ./cmd/cifar10 -data DIR -preset deep    # a stack of layers
//
// DIR is either the binary distribution (cifar-10-batches-bin, or a folder
// holding it) or an image folder with train/ and test/ class folders of
// 32×32 colour images (package imagefolder), such as a JPEG copy of the
// data set. Both are ordered class by class, so the same pixels give the
// same kernels bit for bit. Every flag of cmd/mnist works the same
// (presets, -resume, -seeds, …). Exit status 2 means bad flags or
// configuration, 130 an interrupted run, 1 bad data or a failed run.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"calm/cifar10"
	"calm/cmd/internal/cli"
	"calm/dataset"
	"calm/experiment"
	"calm/imagefolder"
)

func main() { cli.Main("cifar10", run) }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f := cli.NewFlags("cifar10", cli.ColourPresets()...)
	if err := f.Parse(args, stderr); err != nil {
		return err
	}
	if f.Data == "" {
		return cli.UsageError{Err: errors.New("-data DIR is required: the cifar-10-batches-bin folder, or a folder with train/ and test/ class folders of 32×32 images")}
	}
	d, err := load(f.Data)
	if err != nil {
		return err
	}
	s, err := f.Settings(cifar10.Channels)
	if err != nil {
		return err
	}
	opt, err := f.Options(ctx, s, stderr)
	if err != nil {
		return err
	}
	// Both readers give the images class by class: hold out the last of
	// each class.
	opt.StratifiedValidation = true
	return f.Run(d, opt)
}

// labelled is a split of either format: its images and their labels.
type labelled struct {
	dataset.Source
	labels []byte
}

// load reads dir in whichever format it holds.
func load(dir string) (experiment.Data, error) {
	var train, test labelled
	format := "cifar-10-batches-bin"
	if _, ok := cifar10.IsDir(dir); ok {
		tr, te, err := cifar10.Load(dir)
		if err != nil {
			return experiment.Data{}, err
		}
		train, test = labelled{tr, tr.Labels}, labelled{te, te.Labels}
	} else {
		format = "image folder"
		d, err := imagefolder.Load(dir, imagefolder.Options{Channels: cifar10.Channels})
		if err != nil {
			return experiment.Data{}, err
		}
		if d.Test == nil || d.Train.Labels == nil || d.Test.Labels == nil {
			return experiment.Data{}, fmt.Errorf("cifar10: %s: want train/ and test/ with class folders, or the cifar-10-batches-bin files", dir)
		}
		if len(d.Train.Classes) != cifar10.Classes {
			return experiment.Data{}, fmt.Errorf("cifar10: %s/train has %d class folders, want %d", dir, len(d.Train.Classes), cifar10.Classes)
		}
		train, test = labelled{d.Train, d.Train.Labels}, labelled{d.Test, d.Test.Labels}
	}
	if _, c, h, w := train.Shape(); c != cifar10.Channels || h != cifar10.Side || w != cifar10.Side {
		return experiment.Data{}, fmt.Errorf("cifar10: %s holds images of %d×%d: want 32×32", dir, w, h)
	}
	return experiment.Data{
		Name: "CIFAR-10", Train: train.Source, Labelled: train.Source, Labels: train.labels,
		Test: test.Source, TestLabels: test.labels, Classes: cifar10.Classes,
		Description: map[string]any{"data": dir, "format": format},
	}, nil
}
