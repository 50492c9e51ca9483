package cli

import (
	"io"
	"slices"
	"testing"

	"calm/em"
	"calm/experiment"
)

// TestLimit checks that -limit means the same for every command: the
// kernels learn from the first N training images and the classifier is
// fitted on the first N labelled ones, with their labels; without it
// nothing is cut.
func TestLimit(t *testing.T) {
	images := func(n int) em.Source {
		pix := make([]float32, n*4)
		for i := range pix {
			pix[i] = float32(i / 4) // image i holds i
		}
		src, err := em.NewImages(pix, n, 1, 2, 2)
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
		got := f.limit(d)
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
