package experiment

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"

	"calm/experiment/rundir"
)

// Seeds summarises runs that differ only in their seed: for every feature
// set, the mean and standard deviation of its validation and test
// accuracy. The main feature set is the one whose mean validation accuracy
// is best.
type Seeds struct {
	Seeds       []uint64      `json:"seeds"`
	Main        string        `json:"main"`
	FeatureSets []SeedSummary `json:"feature_sets"`
}

// SeedSummary is one feature set over the seeds.
type SeedSummary struct {
	Pooling    string    `json:"pooling"`
	Validation MeanSD    `json:"validation_accuracy"`
	Test       MeanSD    `json:"test_accuracy"`
	C          []float64 `json:"c"` // the C of each seed
}

// MeanSD is the mean and the sample standard deviation of Values.
type MeanSD struct {
	Mean   float64   `json:"mean"`
	SD     float64   `json:"sd"`
	Values []float64 `json:"values"`
}

func meanSD(v []float64) MeanSD {
	var s, ss float64
	for _, x := range v {
		s += x
	}
	mean := s / float64(len(v))
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	sd := 0.0
	if len(v) > 1 {
		sd = math.Sqrt(ss / float64(len(v)-1))
	}
	return MeanSD{Mean: mean, SD: sd, Values: v}
}

// Summarise returns the summary of runs, which must have evaluated the
// same feature sets.
func Summarise(runs []*Metrics) (*Seeds, error) {
	if len(runs) == 0 || len(runs[0].Evaluations) == 0 {
		return nil, fmt.Errorf("experiment: no evaluated runs to summarise")
	}
	s := &Seeds{}
	for _, m := range runs {
		s.Seeds = append(s.Seeds, m.Seed)
		if len(m.Evaluations) != len(runs[0].Evaluations) {
			return nil, fmt.Errorf("experiment: seed %d evaluated %d feature sets, seed %d %d", m.Seed, len(m.Evaluations), runs[0].Seed, len(runs[0].Evaluations))
		}
	}
	best := math.Inf(-1)
	for i, ev := range runs[0].Evaluations {
		var val, test, cs []float64
		for _, m := range runs {
			e := m.Evaluations[i]
			if e.Pooling != ev.Pooling {
				return nil, fmt.Errorf("experiment: seed %d evaluated %s where seed %d evaluated %s", m.Seed, e.Pooling, runs[0].Seed, ev.Pooling)
			}
			if e.ValidationAccuracy != nil {
				val = append(val, *e.ValidationAccuracy)
			}
			test, cs = append(test, e.TestAccuracy), append(cs, e.C)
		}
		fs := SeedSummary{Pooling: ev.Pooling, Test: meanSD(test), C: cs}
		if len(val) == len(runs) {
			fs.Validation = meanSD(val)
			if fs.Validation.Mean > best {
				best, s.Main = fs.Validation.Mean, fs.Pooling
			}
		}
		s.FeatureSets = append(s.FeatureSets, fs)
	}
	if s.Main == "" {
		s.Main = s.FeatureSets[0].Pooling
	}
	return s, nil
}

// RunSeeds runs the experiment once for each of count seeds from first
// on, each into its own directory (rundir.SeedDir) with every layer seeded
// by its seed and, if command is not nil, the command line it gives for
// that seed and directory; then it writes the summary (SaveSeeds). Each
// run's directory can be resumed on its own.
func RunSeeds(d Data, opt Options, first uint64, count int, command func(seed uint64, out string) []string) (*Seeds, error) {
	var runs []*Metrics
	for i := range count {
		seed := first + uint64(i)
		o := opt
		o.Out = rundir.SeedDir(opt.Out, seed)
		o.Layers = slices.Clone(opt.Layers)
		for l := range o.Layers {
			o.Layers[l].Settings.Seed = seed
		}
		if command != nil {
			o.Command = command(seed, o.Out)
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "seed %d (%d of %d) into %s\n", seed, i+1, count, o.Out)
		}
		m, err := Run(d, o)
		if err != nil {
			return nil, err
		}
		runs = append(runs, m)
	}
	return SaveSeeds(opt.Out, runs)
}

// SaveSeeds summarises runs and writes the summary to dir/seeds.json.
func SaveSeeds(dir string, runs []*Metrics) (*Seeds, error) {
	s, err := Summarise(runs)
	if err != nil {
		return nil, err
	}
	if err := rundir.WriteJSON(filepath.Join(dir, rundir.SeedsFile), s); err != nil {
		return nil, err
	}
	return s, nil
}

// Print writes the summary as a table, one feature set a line.
func (s *Seeds) Print(w io.Writer) {
	fmt.Fprintf(w, "over seeds %v (mean ± sd; the main feature set, %s, by mean validation accuracy):\n", s.Seeds, s.Main)
	for _, fs := range s.FeatureSets {
		fmt.Fprintf(w, "  %-12s validation %.2f ± %.2f %%   test %.2f ± %.2f %%   C %v\n", fs.Pooling,
			100*fs.Validation.Mean, 100*fs.Validation.SD, 100*fs.Test.Mean, 100*fs.Test.SD, fs.C)
	}
}
