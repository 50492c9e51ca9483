package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"calm/dataset"
	"calm/experiment"
	"calm/npy"
)

// TestLimit checks that -limit means the same for every command: the
// kernels learn from the first N training images and the classifier is
// fitted on the first N labelled ones, with their labels; without it
// nothing is cut.
func TestLimit(t *testing.T) {
	images := func(n int) dataset.Source {
		pix := make([]float32, n*4)
		for i := range pix {
			pix[i] = float32(i / 4) // image i holds i
		}
		src, err := dataset.NewImages(pix, n, 1, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	labels := make([]byte, 50)
	for i := range labels {
		labels[i] = byte(i % 10)
	}
	d := experiment.Data{Train: images(80), Labelled: images(50), Labels: labels}
	for _, tc := range []struct {
		args               []string
		train, labelled, n int
	}{
		{nil, 80, 50, 50},
		{[]string{"-limit", "30"}, 30, 30, 30},
		{[]string{"-limit", "60"}, 60, 50, 50},
	} {
		f := NewFlags("test", DefaultPreset())
		if err := f.Parse(tc.args, io.Discard); err != nil {
			t.Fatal(err)
		}
		got, err := f.limit(d, false)
		if err != nil {
			t.Fatal(err)
		}
		n, _, _, _ := got.Train.Shape()
		nl, _, _, _ := got.Labelled.Shape()
		if n != tc.train || nl != tc.labelled || len(got.Labels) != tc.n || !slices.Equal(got.Labels, labels[:tc.n]) {
			t.Errorf("%v: %d training images, %d labelled with %d labels; want %d, %d, %d", tc.args, n, nl, len(got.Labels), tc.train, tc.labelled, tc.n)
		}
		last := make([]float32, 4)
		if err := got.Labelled.Read(last, nl-1); err != nil || last[0] != float32(nl-1) {
			t.Errorf("%v: last labelled image holds %v (%v), want image %d", tc.args, last[0], err, nl-1)
		}
	}
}

// TestLimitByClass: on images that come class by class, -limit keeps the
// first images of each class in proportion, with their labels, for the
// kernels too when they learn from the labelled images.
func TestLimitByClass(t *testing.T) {
	labels := []byte{0, 0, 0, 0, 1, 1, 1, 1, 2, 2}
	pix := make([]float32, len(labels)*4)
	for i := range pix {
		pix[i] = float32(i / 4)
	}
	src, err := dataset.NewImages(pix, len(labels), 1, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		limit int
		rows  []int
	}{
		{limit: 5, rows: []int{0, 1, 4, 5, 8}},
		{limit: 3, rows: []int{0, 4, 8}}, // 1.2, 1.2, 0.6: each class's remainder in class order
		{limit: 9, rows: []int{0, 1, 2, 3, 4, 5, 6, 8, 9}},
	} {
		f := NewFlags("test", DefaultPreset())
		if err := f.Parse([]string{"-limit", fmt.Sprint(tc.limit)}, io.Discard); err != nil {
			t.Fatal(err)
		}
		got, err := f.limit(experiment.Data{Train: src, Labelled: src, Labels: labels, Classes: 3}, true)
		if err != nil {
			t.Fatal(err)
		}
		if got.Train != got.Labelled {
			t.Errorf("-limit %d: the kernels learn from other images than the classifier's", tc.limit)
		}
		n, _, _, _ := got.Labelled.Shape()
		read := make([]float32, n*4)
		if err := got.Labelled.Read(read, 0); err != nil {
			t.Fatal(err)
		}
		var rows []int
		for i := 0; i < n; i++ {
			rows = append(rows, int(read[i*4]))
			if got.Labels[i] != labels[rows[i]] {
				t.Errorf("-limit %d: label %d of row %d, want %d", tc.limit, got.Labels[i], rows[i], labels[rows[i]])
			}
		}
		if !slices.Equal(rows, tc.rows) {
			t.Errorf("-limit %d: rows %v, want %v", tc.limit, rows, tc.rows)
		}
	}
}

// TestPresetCheck: a preset with a key that names no flag, or a value its
// flag refuses, stops NewFlags (every command's tests build its flags, so
// a misspelled preset fails them); every preset of this package passes.
func TestPresetCheck(t *testing.T) {
	for _, p := range append([]Preset{DefaultPreset(), WidePreset()}, ColourPresets()...) {
		NewFlags("test", p) // panics on a bad preset
	}
	for _, c := range []struct {
		name  string
		flags map[string]string
		want  string
	}{
		{name: "misspelled", flags: map[string]string{"kernel": "8"}, want: "-kernel, which is no flag"},
		{name: "bad value", flags: map[string]string{"kernels": "many"}, want: "-kernels=many"},
		{name: "bad bool", flags: map[string]string{"pixels": "maybe"}, want: "-pixels=maybe"},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				err, ok := r.(error)
				if !ok || !strings.Contains(err.Error(), c.want) {
					t.Errorf("NewFlags panicked with %v, want an error naming %q", r, c.want)
				}
			}()
			NewFlags("test", DefaultPreset(), Preset{Name: "bad", Flags: c.flags})
		})
	}
}

// TestCFlag: -C takes one value, a decreasing list for validation to
// choose from, or auto; anything else is a usage error.
func TestCFlag(t *testing.T) {
	for _, c := range []struct {
		arg    string
		choose bool
		c      float64
		grid   []float64
		bad    bool
	}{
		{arg: "0.5", c: 0.5},
		{arg: "auto", choose: true},
		{arg: "0.1,0.03,0.01", choose: true, grid: []float64{0.1, 0.03, 0.01}},
		{arg: "0.1,0.3", bad: true},
		{arg: "0.1,x", bad: true},
		{arg: "-1", bad: true},
	} {
		f := NewFlags("test", DefaultPreset())
		if err := f.Parse([]string{"-C", c.arg}, io.Discard); err != nil {
			t.Fatal(err)
		}
		s, err := f.Settings(1)
		if err != nil {
			t.Fatal(err)
		}
		o, err := f.Options(context.Background(), s, io.Discard)
		var ue UsageError
		if c.bad {
			if !errors.As(err, &ue) {
				t.Errorf("-C %s: %v, want a usage error", c.arg, err)
			}
			continue
		}
		if err != nil || o.ChooseC != c.choose || !slices.Equal(o.CGrid, c.grid) || !c.choose && o.C != c.c {
			t.Errorf("-C %s: choose %v, C %v, grid %v, %v; want %v, %v, %v", c.arg, o.ChooseC, o.C, o.CGrid, err, c.choose, c.c, c.grid)
		}
	}
}

// TestInitChannels checks -init against layer 1's input: the images'
// channels, or with -whiten-patches W the C·W·W values of a whitened patch.
func TestInitChannels(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, k, c int) string {
		var b bytes.Buffer
		if err := npy.Encode(&b, make([]float32, k*c), k, c, 1, 1); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b.Bytes(), 0o666); err != nil {
			t.Fatal(err)
		}
		return path
	}
	patches, pixels := write("patches.npy", 4, 3*6*6), write("pixels.npy", 4, 3)
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-whiten-patches", "6", "-width", "1", "-init", patches}, true},
		{[]string{"-whiten-patches", "6", "-width", "1", "-init", pixels}, false},
		{[]string{"-width", "1", "-init", pixels}, true},
		{[]string{"-width", "1", "-init", patches}, false},
	} {
		f := NewFlags("test", DefaultPreset())
		if err := f.Parse(tc.args, io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Settings(3); (err == nil) != tc.ok {
			t.Errorf("%v on 3-channel images: %v, want ok %v", tc.args, err, tc.ok)
		}
	}
}
