package experiment

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
	"calm/graph"
)

// Defaults are a command's flag defaults.
type Defaults struct {
	Out                                string
	Epochs, Kernels, Width, Pad, Batch int
	Pixels                             bool
}

// Flags are the flags cmd/mnist and cmd/stl10 share (their names are the
// commands' interface). A command may add its own to FlagSet before Parse.
type Flags struct {
	FlagSet *flag.FlagSet

	Data, Out, Init, Conv, Resume      string
	Epochs, Limit, Kernels, Width, Pad int
	Batch                              int
	Seed                               uint64
	Tol                                float64
	Eval, Pixels, Quiet                bool

	set map[string]bool
}

// NewFlags registers the shared flags of command name.
func NewFlags(name string, d Defaults) *Flags {
	f := &Flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs := f.FlagSet
	fs.SetOutput(io.Discard) // errors are reported in one line by Main; -h prints the usage
	fs.Usage = func() {}
	fs.StringVar(&f.Data, "data", "", "directory holding the data set's files")
	fs.StringVar(&f.Out, "out", d.Out, "output directory")
	fs.IntVar(&f.Epochs, "epochs", d.Epochs, "maximum number of EM epochs")
	fs.IntVar(&f.Limit, "limit", 0, "use only the first N training images (0 = all)")
	fs.IntVar(&f.Kernels, "kernels", d.Kernels, "number of kernels K")
	fs.IntVar(&f.Width, "width", d.Width, "kernel width w")
	fs.IntVar(&f.Pad, "pad", d.Pad, "zero padding p")
	fs.IntVar(&f.Batch, "batch", d.Batch, "images per batch")
	fs.Uint64Var(&f.Seed, "seed", 0, "seed of the initial θ ~ N(0,1)")
	fs.StringVar(&f.Init, "init", "", "start from this θ (.npy, float32, K×C×w×w) instead of a random one")
	fs.Float64Var(&f.Tol, "tol", 0, "stop when the relative LL gain falls below this (0 = off)")
	fs.BoolVar(&f.Eval, "eval", true, "extract features and fit the classifiers")
	fs.BoolVar(&f.Pixels, "pixels", d.Pixels, "also fit the classifier on raw pixels (with -eval)")
	fs.StringVar(&f.Conv, "conv", graph.OpSets()[0], fmt.Sprintf("op set of the graphs: %v", graph.OpSets()))
	fs.BoolVar(&f.Quiet, "quiet", false, "print nothing but errors")
	fs.StringVar(&f.Resume, "resume", "", "continue the interrupted run whose outputs are in DIR, with its flags")
	return f
}

// UsageError marks errors in flags or configuration (exit status 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// ErrHelp is returned by Parse after printing the usage for -h.
var ErrHelp = flag.ErrHelp

// Parse parses args and checks the values. With -resume DIR, the flags
// recorded by the run in DIR replace the defaults, and no other flag but
// -quiet may be given.
func (f *Flags) Parse(args []string, stderr io.Writer) error {
	fs := f.FlagSet
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "usage: %s [flags]   (see README.md)\n", fs.Name())
			fs.PrintDefaults()
			return ErrHelp
		}
		return UsageError{err}
	}
	if fs.NArg() > 0 {
		return UsageError{fmt.Errorf("unexpected arguments %v", fs.Args())}
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.Resume != "" {
		for name := range f.set {
			if name != "resume" && name != "quiet" {
				return UsageError{fmt.Errorf("-resume takes the flags of the run it continues; -%s cannot be changed", name)}
			}
		}
		if err := f.load(f.Resume); err != nil {
			return err
		}
		f.Out = f.Resume
	}
	switch {
	case f.Epochs < 1:
		return UsageError{fmt.Errorf("-epochs %d: want at least 1", f.Epochs)}
	case f.Limit < 0:
		return UsageError{fmt.Errorf("-limit %d: want 0 (all) or more", f.Limit)}
	case f.Tol < 0:
		return UsageError{fmt.Errorf("-tol %v: want 0 (off) or more", f.Tol)}
	case f.Kernels < 1 || f.Width < 1 || f.Batch < 1 || f.Pad < 0:
		// Zero would mean "default" to em.Settings: reject it here.
		return UsageError{fmt.Errorf("-kernels %d, -width %d, -batch %d, -pad %d: want positive sizes", f.Kernels, f.Width, f.Batch, f.Pad)}
	}
	return nil
}

// load sets the flags recorded in dir/config.json.
func (f *Flags) load(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return fmt.Errorf("-resume %s: %w", dir, err)
	}
	var conf struct{ Flags map[string]string }
	if err := json.Unmarshal(raw, &conf); err != nil || conf.Flags == nil {
		return fmt.Errorf("-resume %s: config.json holds no flags (%v)", dir, err)
	}
	for name, v := range conf.Flags {
		if err := f.FlagSet.Set(name, v); err != nil {
			return fmt.Errorf("-resume %s: flag -%s=%s: %w", dir, name, v, err)
		}
	}
	f.set = map[string]bool{}
	f.FlagSet.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return nil
}

// Values returns every flag but -resume and -quiet, as config.json records
// them for -resume.
func (f *Flags) Values() map[string]string {
	v := map[string]string{}
	f.FlagSet.VisitAll(func(fl *flag.Flag) {
		if fl.Name != "resume" && fl.Name != "quiet" {
			v[fl.Name] = fl.Value.String()
		}
	})
	return v
}

// Settings returns the EM settings for images of c channels: the op set of
// -conv and, with -init, the θ read from it (whose shape must agree with
// -kernels and -width when those are given).
func (f *Flags) Settings(c int) (em.Settings, error) {
	ops, err := graph.Lookup(f.Conv)
	if err != nil {
		return em.Settings{}, UsageError{err}
	}
	s := em.Settings{Kernels: f.Kernels, Size: f.Width, Pad: f.Pad, Batch: f.Batch, MaxEpochs: f.Epochs, Tol: f.Tol, Seed: f.Seed, Ops: ops}
	if f.Init == "" {
		return s, nil
	}
	theta, err := em.LoadTheta(f.Init)
	if err != nil {
		return em.Settings{}, err
	}
	ts := theta.Shape()
	if ts[1] != c {
		return em.Settings{}, fmt.Errorf("-init %s: θ has %d channels, the images %d", f.Init, ts[1], c)
	}
	if (f.set["kernels"] && ts[0] != f.Kernels) || (f.set["width"] && ts[2] != f.Width) {
		return em.Settings{}, UsageError{fmt.Errorf("-init %s holds %d kernels of width %d, but -kernels %d -width %d", f.Init, ts[0], ts[2], f.Kernels, f.Width)}
	}
	s.Kernels, s.Size, s.Init = ts[0], ts[2], theta
	return s, nil
}

// Options returns the Options of a run with these flags.
func (f *Flags) Options(ctx context.Context, s em.Settings, stderr io.Writer) Options {
	o := Options{Out: f.Out, Settings: s, Eval: f.Eval, Pixels: f.Pixels, Log: stderr,
		Config: map[string]any{"flags": f.Values()}, Context: ctx, Resume: f.Resume != ""}
	if f.Quiet {
		o.Log = nil
	}
	return o
}

// ExitCode is 2 for bad flags or an impossible configuration, 130 for an
// interrupted run, 1 for any other error and 0 for none.
func ExitCode(err error) int {
	switch {
	case err == nil || errors.Is(err, ErrHelp):
		return 0
	case errors.As(err, new(UsageError)) || errors.Is(err, graph.ErrConfig):
		return 2
	case errors.As(err, new(*InterruptedError)):
		return 130
	}
	return 1
}

// Main runs a command's run function the way users expect: SIGINT or
// SIGTERM stops the run at the next batch, keeping the last whole epoch's
// checkpoint (a second signal kills at once; every output is written
// atomically); an error is one line on stderr, and the exit status is
// ExitCode's.
func Main(name string, run func(ctx context.Context, args []string, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Stderr)
	var ie *InterruptedError
	switch {
	case err == nil || errors.Is(err, ErrHelp):
	case errors.As(err, &ie):
		fmt.Fprintf(os.Stderr, "%s: %v; resume with: go run ./cmd/%s -resume %s\n", name, err, name, ie.Dir)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	os.Exit(ExitCode(err))
}
