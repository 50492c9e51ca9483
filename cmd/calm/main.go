// Command calm trains CALM layers by EM on a folder of images, as cmd/mnist
// does on MNIST, or writes the features of a folder's images under a model
// trained before.
//
//	go run ./cmd/calm -data DIR                        # train on DIR/train (+ DIR/unlabeled), evaluate on DIR/test
//	go run ./cmd/calm -trained OUT -data DIR -features  # features of DIR's images under OUT's model, no training
//
// DIR holds train/ and, optionally, test/ and unlabeled/, each with one
// subfolder of images per class or the images themselves (package
// imagefolder). Every flag of cmd/mnist works the same (presets, -resume,
// -seeds, …); -channels, -size, -skip-bad and -max-pixels say how files
// become images.
// Exit status 2 means bad flags or configuration, 130 an interrupted run,
// 1 bad data or a failed run.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"calm/cmd/internal/cli"
	"calm/dataset"
	"calm/em"
	"calm/experiment"
	"calm/experiment/rundir"
	"calm/graph"
	"calm/imagefolder"
	"calm/internal/atomicfile"
)

// Presets are the command's named defaults: cmd/mnist's default preset,
// the one chosen on MNIST's validation split.
var Presets = []cli.Preset{
	cli.DefaultPreset(),
}

func main() { cli.Main("calm", run) }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f := cli.NewFlags("calm", Presets...)
	channels := f.FlagSet.Int("channels", 1, "image channels: 1 (grey) or 3 (RGB)")
	size := f.FlagSet.Int("size", 0, "resize each image's shorter side to this and cut out the centre square (0: all images must share a size)")
	skipBad := f.FlagSet.Bool("skip-bad", false, "skip image files that do not decode (counted in the log and metrics.json) instead of failing")
	trained := f.FlagSet.String("trained", "", "write the features of -data's images under the model trained into this directory, and train nothing")
	maxPixels := f.FlagSet.Int("max-pixels", imagefolder.DefaultMaxPixels, "refuse, from its header, an image file that declares more pixels than this")
	if err := f.Parse(args, stderr); err != nil {
		return err
	}
	if f.Data == "" {
		return cli.UsageError{Err: errors.New("-data DIR is required: a folder with train/ (and test/, unlabeled/)")}
	}
	if *maxPixels < 1 {
		return cli.UsageError{Err: fmt.Errorf("-max-pixels %d: want 1 or more", *maxPixels)}
	}
	d, err := imagefolder.Load(f.Data, imagefolder.Options{Channels: *channels, Size: *size, SkipBad: *skipBad, MaxPixels: *maxPixels})
	if err != nil {
		return err
	}
	var skipped int
	for _, s := range []*imagefolder.Set{d.Train, d.Test, d.Unlabeled} {
		if s != nil {
			skipped += len(s.Skipped)
			if len(s.Skipped) > 0 && !f.Quiet {
				fmt.Fprintf(stderr, "skipped %d files that do not decode, the first %s\n", len(s.Skipped), s.Skipped[0])
			}
		}
	}
	if *trained != "" {
		return extract(*trained, d, f, stderr)
	}
	_, c, _, _ := d.Train.Shape()
	s, err := f.Settings(c)
	if err != nil {
		return err
	}
	opt, err := f.Options(ctx, s, stderr)
	if err != nil {
		return err
	}
	var train dataset.Source = d.Train
	if d.Unlabeled != nil {
		if train, err = dataset.Concat(d.Train, d.Unlabeled); err != nil {
			return err
		}
	}
	data := experiment.Data{Name: filepath.Base(filepath.Clean(f.Data)), Train: train, SkippedFiles: skipped}
	switch {
	case d.Train.Labels == nil || d.Test == nil || d.Test.Labels == nil:
		if opt.Eval && !f.Quiet {
			fmt.Fprintln(stderr, "no labelled train/ and test/: training only, nothing evaluated")
		}
		opt.Eval = false
	default:
		data.Labelled, data.Labels = d.Train, d.Train.Labels
		data.Test, data.TestLabels, data.Classes = d.Test, d.Test.Labels, len(d.Train.Classes)
		// The images come class by class: hold out the last of each class.
		opt.StratifiedValidation = true
	}
	return f.Run(data, opt)
}

// extract writes, for each split of d, the features of its images under the
// model in dir, for every pooling of -pool: features-<pooling>-<split>.npy
// (and -all for a stack; <pooling> is A+B for a per-layer item), and
// index-<split>.csv, one row per image: its path and label.
func extract(dir string, d *imagefolder.Data, f *cli.Flags, stderr io.Writer) error {
	if !f.Features {
		return cli.UsageError{Err: errors.New("-trained writes features: give -features too")}
	}
	ops, err := graph.Lookup(f.Ops)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	pools, layerPools, err := cli.ParsePools(f.Pool)
	if err != nil {
		return err
	}
	st, err := em.LoadStack(dir)
	if err != nil {
		return err
	}
	// The sets a training run evaluates, by the same names.
	sets, err := experiment.FeatureSets(pools, layerPools, len(st.Layers))
	if err != nil {
		return cli.UsageError{Err: err}
	}
	out := f.Out
	if err := os.MkdirAll(out, 0o777); err != nil {
		return err
	}
	for _, split := range []struct {
		name string
		set  *imagefolder.Set
	}{{"train", d.Train}, {"test", d.Test}, {"unlabeled", d.Unlabeled}} {
		if split.set == nil {
			continue
		}
		var index strings.Builder
		index.WriteString("path,label\n")
		for i, p := range split.set.Paths {
			label := ""
			if split.set.Labels != nil {
				label = strconv.Itoa(int(split.set.Labels[i]))
			}
			fmt.Fprintf(&index, "%s,%s\n", strconv.Quote(p), label)
		}
		if err := atomicfile.WriteBytes(filepath.Join(out, "index-"+split.name+".csv"), []byte(index.String())); err != nil {
			return err
		}
		for _, set := range sets {
			rows, dim, err := experiment.Features(dir, split.set, set, ops)
			if err != nil {
				return err
			}
			file := rundir.FeaturesFile(set.Name, split.name)
			if err := experiment.SaveFeatures(filepath.Join(out, file), rows, dim); err != nil {
				return err
			}
			if !f.Quiet {
				fmt.Fprintf(stderr, "%s: %d images × %d features\n", filepath.Join(out, file), len(rows)/dim, dim)
			}
		}
	}
	return nil
}
