package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"calm/classify"
	"calm/dataset"
	"calm/em"
	"calm/experiment"
	"calm/experiment/rundir"
	"calm/graph"
)

// A Preset is a named set of flag values: the command's defaults under
// that name. Flags given on the command line override it.
type Preset struct {
	Name  string
	Doc   string            // what it is, in one line
	Flags map[string]string // flag name → value
}

// DefaultPreset returns the commands' default: the one-layer setting
// chosen on MNIST's validation split (README, What EM does).
func DefaultPreset() Preset {
	return Preset{Name: "default", Doc: "one layer learned by EM: 128 kernels of 9×9 seeded by k-means++ on ZCA-whitened images, up to 5 epochs of the patch model (the epoch that validates best kept), the square root of its posterior pooled over 3×3 cells; C by validation", Flags: map[string]string{
		"kernels": "128", "width": "9", "pad": "0", "batch": "1000", "epochs": "5", "model": "patch", "whiten": "9",
		"init-from": "kmeans++", "pool": "post-root-mean3", "C": "0.3,0.1,0.03", "epoch-curve": "true", "pick-epoch": "true", "labels": "100,300,1000,3000,10000", "pixels": "false",
	}}
}

// WidePreset returns the default preset with twice the kernels and their
// posterior pooled over a spatial pyramid: the one layer that validates
// best on MNIST, at about twice the default's time and memory (README,
// What EM does).
func WidePreset() Preset {
	p := DefaultPreset()
	p.Name = "wide"
	p.Doc = "the default with 256 kernels, up to 3 epochs, the square root of the posterior pooled over a pyramid of 1×1, 2×2 and 3×3 cells: better on validation, twice the time and memory"
	p.Flags = maps.Clone(p.Flags)
	p.Flags["kernels"], p.Flags["epochs"], p.Flags["pool"] = "256", "3", "post-root-mean-pyramid3"
	return p
}

// ColourPresets returns the presets of colour image sets (cmd/cifar10),
// the first the default: one layer on whitened colour patches, chosen on
// CIFAR-10's validation split (docs/results-cifar10.md).
func ColourPresets() []Preset {
	return []Preset{
		{Name: "default", Doc: "one layer learned by EM: 1 600 k-means++ kernels on 6×6 colour patches, each normalised and ZCA-whitened (ε = 1, chosen on validation), one epoch of the patch model (the epoch curve keeps the better of the seeded and the trained kernels); as features, the square root of the posterior pooled over quadrants (it validated above Coates's triangle encoding of the same kernels: -pool post-root-mean2,tri-mean2 scores both); C by validation", Flags: map[string]string{
			"whiten-patches": "6", "whiten-eps": "1", "kernels": "1600", "width": "1", "pad": "0", "batch": "100", "epochs": "1", "model": "patch",
			"init-from": "kmeans++", "pool": "post-root-mean2", "epoch-curve": "true", "pick-epoch": "true", "C": "0.003,0.001,0.0003", "labels": "", "pixels": "false",
		}},
		{Name: "deep", Doc: "two layers learned by EM, one epoch each: 400 kernels on the whitened 6×6 patches, the square root of their posterior max-pooled 3×3, under 1 600 kernels of 3×3; as features, layer 1's posterior (square root) and layer 2's log joint (log-sum-exp) pooled over quadrants, side by side; C by validation", Flags: map[string]string{
			"whiten-patches": "6", "whiten-eps": "0.1", "layers": "400x1:post-root+max3,1600x3", "batch": "100", "epochs": "1", "model": "patch",
			"init-from": "kmeans++", "pool": "post-root-mean2+lse2", "C": "0.003,0.001,0.0003", "labels": "", "pixels": "false",
		}},
	}
}

// Flags are the flags the experiment commands share (their names are the
// commands' interface). A command may add its own to FlagSet before Parse.
type Flags struct {
	FlagSet *flag.FlagSet

	Preset, Data, Out, Init, InitFrom, Ops, Pool, Labels, Graph, Resume, Layers, C, Model, Classifier    string
	Epochs, Limit, Kernels, Width, Pad, Batch, InitSample, Validation, Seeds, Whiten, WhitenPatches      int
	Seed                                                                                                 uint64
	Tol, RepairCount, RepairCosine, WhitenEpsilon, Stepwise, Anneal                                      float64
	Mixing, LearnVariance, KernelVariances, Eval, Pixels, Features, Quiet, EpochCurve, PickEpoch, Mirror bool

	presets []Preset
	generic map[string]string // each flag's default outside any preset
	set     map[string]bool   // flags given on the command line (or by -resume)
}

// NewFlags registers the shared flags of command name. The first preset
// is the default; its values are the flags' defaults.
func NewFlags(name string, presets ...Preset) *Flags {
	f := &Flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), presets: presets}
	fs := f.FlagSet
	fs.SetOutput(io.Discard) // errors are reported in one line by Main; -h prints the usage
	fs.Usage = func() {}
	var names []string
	for _, p := range presets {
		names = append(names, p.Name)
	}
	fs.StringVar(&f.Preset, "preset", presets[0].Name, fmt.Sprintf("the defaults of the other flags: %s", strings.Join(names, ", ")))
	fs.StringVar(&f.Data, "data", "", "directory holding the data set's files")
	fs.StringVar(&f.Out, "out", "out/"+name, "output directory")
	fs.IntVar(&f.Epochs, "epochs", em.DefaultMaxEpochs, "maximum number of EM epochs (0: none, the kernels stay as initialised)")
	fs.Float64Var(&f.Tol, "tol", 0, "stop when the relative LL gain falls below this (0 = off)")
	fs.IntVar(&f.Limit, "limit", 0, "use only the first N training images, for the kernels and the classifier alike (0 = all)")
	fs.StringVar(&f.Layers, "layers", "", "a stack of layers, e.g. 64x5p2:post+max2,128x5e3 (see README); empty: one layer of -kernels, -width, -pad")
	fs.IntVar(&f.Kernels, "kernels", em.DefaultKernels, "number of kernels K")
	fs.IntVar(&f.Width, "width", em.DefaultWidth, "kernel width w")
	fs.IntVar(&f.Pad, "pad", 0, "zero padding p")
	fs.IntVar(&f.Batch, "batch", em.DefaultBatch, "images per batch: a memory bound (once EM runs, results change with it by float rounding only)")
	fs.Uint64Var(&f.Seed, "seed", 0, "seed of the initial θ")
	fs.StringVar(&f.Init, "init", "", "start from this θ (.npy, float32, K×C×w×w)")
	fs.StringVar(&f.InitFrom, "init-from", em.InitNormal.String(), "initial θ: normal (N(0,1), the paper's), patches or kmeans++ (of sampled patches)")
	fs.IntVar(&f.InitSample, "init-sample", em.DefaultInitSample, "patches sampled for -init-from patches or kmeans++")
	fs.StringVar(&f.Model, "model", graph.ImageModel.String(), "what EM assumes about the patches: image (the paper's: one patch per image) or patch (every patch a draw of the mixture)")
	fs.IntVar(&f.Whiten, "whiten", 0, "whiten the images in front of layer 1 by a ZCA filter of this odd width (0: off)")
	fs.IntVar(&f.WhitenPatches, "whiten-patches", 0, "whiten each patch of this width instead, normalised for brightness and contrast first: layer 1 sees it as the C·W·W channels of one position, so give it 1×1 kernels (0: off)")
	fs.Float64Var(&f.WhitenEpsilon, "whiten-eps", experiment.DefaultWhitenEpsilon, "ε of the whitening: variance added to every eigenvalue of the patch covariance")
	fs.BoolVar(&f.Mixing, "mixing", false, "learn the mixing weights π_k (the paper's are uniform)")
	fs.BoolVar(&f.LearnVariance, "learn-variance", false, "learn the variance σ² the patch model's Gaussians share (the paper fixes it to 1); the features use it too")
	fs.BoolVar(&f.KernelVariances, "kernel-variances", false, "learn a variance σ_k² for each kernel of the patch model (the paper fixes them to 1); the log joint and the features use them")
	fs.Float64Var(&f.Anneal, "anneal", 0, "deterministic annealing: the E-step's inverse temperature β in the first epoch, moved geometrically to 1 by the last (0: off, EM)")
	fs.Float64Var(&f.Stepwise, "stepwise", 0, "stepwise (online) EM: update θ after every batch with step size (t+1)^-α for this α in (0, 1] (0: batch EM, the paper's)")
	fs.Float64Var(&f.RepairCount, "repair-count", 0, "after an epoch, re-seed kernels whose expected count is below this (0 = off)")
	fs.Float64Var(&f.RepairCosine, "repair-cosine", 0, "after an epoch, re-seed kernels this similar (cosine) to a lower one (0 = off)")
	fs.StringVar(&f.Ops, "ops", graph.OpSets()[0].Name(), fmt.Sprintf("op set of the graphs: %s", strings.Join(opSetNames(), ", ")))
	fs.StringVar(&f.Pool, "pool", graph.ImageWide.Name(), "poolings evaluated, comma-separated (validation picks the main one): image, lseG, lse-pyramidG (grids 1…G side by side), max, maxG, max-pyramidG, mean, meanG, mean-pyramidG; post-NAME pools the posterior over kernels instead of the log joint, post-root-NAME the square root of a posterior's mean, meanG or mean-pyramidG; in a stack, A+B+… pools layer 1 by A, layer 2 by B, …, side by side")
	fs.BoolVar(&f.Eval, "eval", true, "extract features and fit the classifiers")
	fs.StringVar(&f.C, "C", "1", "the classifier's inverse L2 strength; several, comma-separated and decreasing, for validation to choose from; or auto: 1, 0.3, 0.1, 0.03, 0.01")
	fs.StringVar(&f.Classifier, "classifier", classify.Softmax.String(), "the linear classifier: softmax (the paper's), svm (one-vs-rest L2-SVM, the anchors'), or auto: chosen by validation")
	fs.IntVar(&f.Validation, "validation", DefaultValidation, "labelled training images, the last ones, held out to make every choice on (0: none); with fewer than 6 times as many labelled images, a sixth of them unless given")
	fs.BoolVar(&f.EpochCurve, "epoch-curve", false, "evaluate the top layer after every EM epoch on the validation images (epochs.png)")
	fs.BoolVar(&f.PickEpoch, "pick-epoch", false, "with -epoch-curve: keep the top layer's kernels of the epoch that validates best (the number of epochs chosen by validation), and stop EM once the curve has fallen below its best for two epochs")
	fs.IntVar(&f.Seeds, "seeds", 1, "repeat the run for this many seeds from -seed on, each into OUT/seed-S, and summarise them (seeds.json)")
	fs.BoolVar(&f.Mirror, "mirror", false, "also fit the classifiers on the mirror image of every labelled image (validation and test images are scored as they are)")
	fs.BoolVar(&f.Pixels, "pixels", true, "also fit the classifier on raw pixels")
	fs.StringVar(&f.Labels, "labels", "", "also fit on balanced subsets of these many labels, comma-separated (labels.png)")
	fs.BoolVar(&f.Features, "features", false, "write the features and labels as .npy files")
	fs.StringVar(&f.Graph, "graph", "", "write the compiled E-step and M-step graphs as DOT files into this directory")
	fs.BoolVar(&f.Quiet, "quiet", false, "print nothing but errors")
	fs.StringVar(&f.Resume, "resume", "", "continue the interrupted run whose outputs are in DIR, with its flags")
	// The default preset's values are the defaults -h shows; a flag no
	// preset sets keeps its own.
	f.generic = map[string]string{}
	fs.VisitAll(func(fl *flag.Flag) { f.generic[fl.Name] = fl.DefValue })
	for _, p := range presets {
		if err := p.check(fs); err != nil {
			panic(err) // the command's own presets: a programmer's error
		}
	}
	for name, v := range presets[0].Flags {
		fl := fs.Lookup(name)
		fl.DefValue = v
		fl.Value.Set(v) // checked above
	}
	return f
}

// check reports a key of p that names no flag of fs, or a value its flag
// refuses, each on a scratch copy of the flag.
func (p Preset) check(fs *flag.FlagSet) error {
	for name, v := range p.Flags {
		fl := fs.Lookup(name)
		if fl == nil {
			return fmt.Errorf("cli: preset %s sets -%s, which is no flag", p.Name, name)
		}
		scratch := flag.NewFlagSet("check", flag.ContinueOnError)
		scratch.SetOutput(io.Discard)
		var s string
		var i int
		var u uint64
		var fv float64
		var b bool
		switch fl.Value.(flag.Getter).Get().(type) {
		case string:
			scratch.StringVar(&s, name, "", "")
		case int:
			scratch.IntVar(&i, name, 0, "")
		case uint64:
			scratch.Uint64Var(&u, name, 0, "")
		case float64:
			scratch.Float64Var(&fv, name, 0, "")
		case bool:
			scratch.BoolVar(&b, name, false, "")
		default:
			return fmt.Errorf("cli: preset %s sets -%s, a flag of type %T", p.Name, name, fl.Value)
		}
		if err := scratch.Set(name, v); err != nil {
			return fmt.Errorf("cli: preset %s: -%s=%s: %w", p.Name, name, v, err)
		}
	}
	return nil
}

func opSetNames() []string {
	var names []string
	for _, ops := range graph.OpSets() {
		names = append(names, ops.Name())
	}
	return names
}

// UsageError marks errors in flags or configuration (exit status 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// ErrHelp is returned by Parse after printing the usage for -h.
var ErrHelp = flag.ErrHelp

// Parse parses args, applies the chosen preset to the flags not given and
// checks the values. With -resume DIR, the flags recorded by the run in
// DIR replace everything, and no other flag but -quiet may be given.
func (f *Flags) Parse(args []string, stderr io.Writer) error {
	fs := f.FlagSet
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "usage: %s [flags]   (see README.md)\n\npresets:\n", fs.Name())
			for _, p := range f.presets {
				fmt.Fprintf(stderr, "  %-8s %s\n", p.Name, p.Doc)
			}
			fmt.Fprintln(stderr, "\nflags (defaults of the default preset):")
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
	} else {
		i := slices.IndexFunc(f.presets, func(p Preset) bool { return p.Name == f.Preset })
		if i < 0 {
			return UsageError{fmt.Errorf("-preset %q: want one of %v", f.Preset, presetNames(f.presets))}
		}
		for name, def := range f.generic {
			if f.set[name] || name == "preset" {
				continue
			}
			v, ok := f.presets[i].Flags[name]
			if !ok {
				v = def
			}
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("preset %s: -%s=%s: %w", f.Preset, name, v, err)
			}
		}
	}
	switch {
	case f.Epochs < 0:
		return UsageError{fmt.Errorf("-epochs %d: want 0 or more", f.Epochs)}
	case f.Limit < 0:
		return UsageError{fmt.Errorf("-limit %d: want 0 (all) or more", f.Limit)}
	case f.Tol < 0:
		return UsageError{fmt.Errorf("-tol %v: want 0 (off) or more", f.Tol)}
	case f.Validation < 0:
		return UsageError{fmt.Errorf("-validation %d: want 0 (none) or more", f.Validation)}
	case !(f.WhitenEpsilon > 0):
		return UsageError{fmt.Errorf("-whiten-eps %v: want a positive ε", f.WhitenEpsilon)}
	case f.Seeds > 1 && f.Resume != "":
		return UsageError{fmt.Errorf("-resume continues one run: resume each seed's directory (OUT/seed-S) on its own")}
	case f.Seeds < 1:
		return UsageError{fmt.Errorf("-seeds %d: want 1 or more", f.Seeds)}
	case f.Kernels < 1 || f.Width < 1 || f.Batch < 1 || f.Pad < 0 || f.InitSample < 1:
		// Zero would mean "default" to em.Settings: reject it here.
		return UsageError{fmt.Errorf("-kernels %d, -width %d, -batch %d, -pad %d, -init-sample %d: want positive sizes", f.Kernels, f.Width, f.Batch, f.Pad, f.InitSample)}
	}
	return nil
}

// ParsePools parses -pool's comma-separated list: the poolings of the top
// layer (and of all layers) and, for items "A+B+…", the feature sets of
// every layer of a stack, layer 1 pooled by A, layer 2 by B, ….
func ParsePools(list string) (pools []graph.Pooling, layerPools [][]graph.Pooling, err error) {
	for _, item := range strings.Split(list, ",") {
		var ps []graph.Pooling
		for _, name := range strings.Split(item, "+") {
			p, err := graph.ParsePooling(strings.TrimSpace(name))
			if err != nil {
				return nil, nil, UsageError{fmt.Errorf("-pool: %w", err)}
			}
			ps = append(ps, p)
		}
		if len(ps) > 1 {
			layerPools = append(layerPools, ps)
		} else {
			pools = append(pools, ps[0])
		}
	}
	return pools, layerPools, nil
}

func presetNames(ps []Preset) []string {
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

// load sets the flags of the command line recorded in dir/config.json.
func (f *Flags) load(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, rundir.ConfigFile))
	if err != nil {
		return fmt.Errorf("-resume %s: %w", dir, err)
	}
	var conf experiment.RunConfig
	if err := json.Unmarshal(raw, &conf); err != nil || conf.Command == nil {
		return fmt.Errorf("-resume %s: config.json holds no command line (%v)", dir, err)
	}
	for _, arg := range conf.Command {
		name, v, ok := strings.Cut(strings.TrimPrefix(arg, "-"), "=")
		if !ok || !strings.HasPrefix(arg, "-") {
			return fmt.Errorf("-resume %s: config.json: argument %q is not -name=value", dir, arg)
		}
		if err := f.FlagSet.Set(name, v); err != nil {
			return fmt.Errorf("-resume %s: flag -%s=%s: %w", dir, name, v, err)
		}
	}
	return nil
}

// Command returns every flag but -resume and -quiet as -name=value, in the
// order of their names: the command line config.json records for -resume.
func (f *Flags) Command() []string {
	var cmd []string
	f.FlagSet.VisitAll(func(fl *flag.Flag) {
		if fl.Name != "resume" && fl.Name != "quiet" {
			cmd = append(cmd, "-"+fl.Name+"="+fl.Value.String())
		}
	})
	return cmd
}

// withArg returns cmd (from Command) with flag name set to v.
func withArg(cmd []string, name, v string) []string {
	out := slices.Clone(cmd)
	for i, arg := range out {
		if strings.HasPrefix(arg, "-"+name+"=") {
			out[i] = "-" + name + "=" + v
		}
	}
	return out
}

// Settings returns the EM settings for images of c channels: the op set of
// -ops, the initialisation and, with -init, the θ read from it (whose shape
// must agree with -kernels and -width when those are given).
func (f *Flags) Settings(c int) (em.Settings, error) {
	ops, err := graph.Lookup(f.Ops)
	if err != nil {
		return em.Settings{}, UsageError{err}
	}
	from, err := em.ParseInitMethod(f.InitFrom)
	if err != nil {
		return em.Settings{}, UsageError{err}
	}
	model, err := graph.ParseModel(f.Model)
	if err != nil {
		return em.Settings{}, UsageError{err}
	}
	s := em.Settings{Kernels: f.Kernels, Width: f.Width, Pad: f.Pad, Batch: f.Batch, MaxEpochs: maxEpochs(f.Epochs), Tol: f.Tol,
		Seed: f.Seed, InitFrom: from, InitSample: f.InitSample, Mixing: f.Mixing, Model: model, Stepwise: f.Stepwise, Anneal: f.Anneal, LearnVariance: f.LearnVariance, KernelVariances: f.KernelVariances,
		Repair: em.Repair{MinCount: f.RepairCount, MaxCosine: f.RepairCosine}, Ops: ops}
	if f.Init == "" {
		return s, nil
	}
	theta, err := em.LoadTheta(f.Init)
	if err != nil {
		return em.Settings{}, err
	}
	ts := theta.Shape()
	in := c
	if f.WhitenPatches > 0 {
		in = c * f.WhitenPatches * f.WhitenPatches // a whitened patch's values are the channels of its position
	}
	if ts[1] != in {
		return em.Settings{}, fmt.Errorf("-init %s: θ has %d channels, layer 1's input %d", f.Init, ts[1], in)
	}
	if (f.set["kernels"] && ts[0] != f.Kernels) || (f.set["width"] && ts[2] != f.Width) {
		return em.Settings{}, UsageError{fmt.Errorf("-init %s holds %d kernels of width %d, but -kernels %d -width %d", f.Init, ts[0], ts[2], f.Kernels, f.Width)}
	}
	s.Kernels, s.Width, s.Init = ts[0], ts[2], theta
	return s, nil
}

// DefaultValidation is -validation's default: MNIST's usual split, the
// last 10 000 of its 60 000 training images.
const DefaultValidation = 10000

// maxEpochs is em.Settings.MaxEpochs for a count of epochs as the flags
// give it, where 0 means none (to em.Settings, 0 means the default).
func maxEpochs(epochs int) int {
	if epochs == 0 {
		return em.NoEpochs
	}
	return epochs
}

// Options returns the experiment's options with these flags: the layers
// of -layers (each with the settings s but for its kernels, width and
// padding), or the one layer of s.
func (f *Flags) Options(ctx context.Context, s em.Settings, stderr io.Writer) (experiment.Options, error) {
	layers := []em.StackLayer{{Settings: s}}
	if f.Layers != "" {
		if f.Init != "" {
			return experiment.Options{}, UsageError{fmt.Errorf("-init gives one layer's θ; it does not go with -layers")}
		}
		specs, err := ParseLayers(f.Layers)
		if err != nil {
			return experiment.Options{}, UsageError{err}
		}
		layers = layers[:0]
		for _, spec := range specs {
			ls := s
			ls.Kernels, ls.Width, ls.Pad = spec.Kernels, spec.Width, spec.Pad
			if spec.Epochs >= 0 {
				ls.MaxEpochs = maxEpochs(spec.Epochs)
			}
			layers = append(layers, em.StackLayer{Settings: ls, Transform: spec.Transform})
		}
	}
	pools, layerPools, err := ParsePools(f.Pool)
	if err != nil {
		return experiment.Options{}, err
	}
	var labels []int
	if f.Labels != "" {
		for _, v := range strings.Split(f.Labels, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				return experiment.Options{}, UsageError{fmt.Errorf("-labels %q: want positive counts, comma-separated", f.Labels)}
			}
			labels = append(labels, n)
		}
	}
	var classifiers []classify.Loss
	if f.Classifier == "auto" {
		classifiers = []classify.Loss{classify.Softmax, classify.SquaredHinge}
	} else {
		loss, err := classify.ParseLoss(f.Classifier)
		if err != nil {
			return experiment.Options{}, UsageError{fmt.Errorf("-classifier: %w (or auto)", err)}
		}
		classifiers = []classify.Loss{loss}
	}
	var c float64
	choose := f.C == "auto" || strings.Contains(f.C, ",")
	var grid []float64
	if strings.Contains(f.C, ",") {
		for _, item := range strings.Split(f.C, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(item), 64)
			if err != nil || !(v > 0) || len(grid) > 0 && v >= grid[len(grid)-1] {
				return experiment.Options{}, UsageError{fmt.Errorf("-C %q: want positive numbers, decreasing, comma-separated", f.C)}
			}
			grid = append(grid, v)
		}
	}
	if !choose {
		v, err := strconv.ParseFloat(f.C, 64)
		if err != nil || !(v > 0) {
			return experiment.Options{}, UsageError{fmt.Errorf("-C %q: want a positive number or auto", f.C)}
		}
		c = v
	}
	o := experiment.Options{Out: f.Out, Layers: layers, Pools: pools, LayerPools: layerPools, C: c, ChooseC: choose, CGrid: grid, Classifiers: classifiers, Validation: f.Validation, EpochCurve: f.EpochCurve, PickEpoch: f.PickEpoch && f.EpochCurve,
		Whiten: f.Whiten, WhitenEpsilon: f.WhitenEpsilon, WhitenPatches: f.WhitenPatches,
		Eval: f.Eval, Pixels: f.Pixels, Mirror: f.Mirror, LabelCounts: labels,
		Features: f.Features, GraphDir: f.Graph, Log: stderr, Command: f.Command(),
		Context: ctx, Resume: f.Resume != ""}
	if f.Quiet {
		o.Log = nil
	} else {
		o.Progress = func(l, n int) em.Recorder { return NewProgress(stderr, layers[l].Settings.MaxEpochs, l, n) }
		o.Working = NewWorking(stderr)
	}
	return o, nil
}

// limit returns d with -limit applied, the same way for every command: the
// kernels learn from the first N training images and the classifier is
// fitted on the first N labelled ones. Labelled images that come class by
// class (byClass) are cut class by class instead, each class's first
// images in proportion to its size, and so are the training images when
// they are the labelled ones.
func (f *Flags) limit(d experiment.Data, byClass bool) (experiment.Data, error) {
	if f.Limit == 0 {
		return d, nil
	}
	if byClass && d.Labelled != nil && f.Limit < len(d.Labels) {
		index := firstOfEachClass(d.Labels, d.Classes, f.Limit)
		same := d.Train == d.Labelled
		labelled, err := dataset.Subset(d.Labelled, index)
		if err != nil {
			return d, err
		}
		labels := make([]byte, len(index))
		for i, j := range index {
			labels[i] = d.Labels[j]
		}
		d.Labelled, d.Labels = labelled, labels
		if same {
			d.Train = labelled
			return d, nil
		}
	}
	d.Train = dataset.First(d.Train, f.Limit)
	if d.Labelled != nil {
		d.Labelled = dataset.First(d.Labelled, f.Limit)
		n, _, _, _ := d.Labelled.Shape()
		d.Labels = d.Labels[:n]
	}
	return d, nil
}

// firstOfEachClass returns, in row order, the rows of the first images of
// each class, n in all, each class's share of n in proportion to its
// images (experiment.ClassShares).
func firstOfEachClass(labels []byte, classes, n int) []int {
	take := experiment.ClassShares(labels, classes, n)
	var index []int
	for i, l := range labels {
		if take[l] > 0 {
			index = append(index, i)
			take[l]--
		}
	}
	return index
}

// Run runs the experiment on d with opt, once, or with -seeds N once for
// each seed from -seed on, each into its own directory OUT/seed-S (which
// -resume continues like any run), and then writes the mean and standard
// deviation of every accuracy into OUT/seeds.json. Unless -validation was
// given, the validation split is a sixth of the labelled images when they
// are fewer than six times DefaultValidation.
func (f *Flags) Run(d experiment.Data, opt experiment.Options) error {
	d, err := f.limit(d, opt.StratifiedValidation)
	if err != nil {
		return err
	}
	if n := len(d.Labels); !f.set["validation"] && f.Resume == "" && n < 6*DefaultValidation {
		opt.Validation = n / 6
		opt.Command = withArg(opt.Command, "validation", strconv.Itoa(opt.Validation))
	}
	if f.Seeds == 1 {
		_, err := experiment.Run(d, opt)
		return err
	}
	command := func(seed uint64, out string) []string {
		return withArg(withArg(withArg(opt.Command, "seed", strconv.FormatUint(seed, 10)), "seeds", "1"), "out", out)
	}
	sum, err := experiment.RunSeeds(d, opt, f.Seed, f.Seeds, command)
	if err != nil {
		return err
	}
	if opt.Log != nil {
		sum.Print(opt.Log)
	}
	return nil
}
