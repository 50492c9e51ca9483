package dataset_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"calm/dataset"
)

// images returns n images of c×h×w whose values are fresh random numbers.
func images(t *testing.T, rng *rand.Rand, n, c, h, w int) (*dataset.Images, []float32) {
	t.Helper()
	pix := make([]float32, n*c*h*w)
	for i := range pix {
		pix[i] = rng.Float32()
	}
	im, err := dataset.NewImages(pix, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	return im, pix
}

// readAll reads every image of src in reads of at most batch images.
func readAll(src dataset.Source, batch int) ([]float32, error) {
	n, c, h, w := src.Shape()
	size := c * h * w
	out := make([]float32, n*size)
	for i := 0; i < n; i += batch {
		k := min(batch, n-i)
		if err := src.Read(out[i*size:(i+k)*size], i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func TestSources(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const c, h, w = 2, 3, 4
	size := c * h * w
	a, pa := images(t, rng, 7, c, h, w)
	b, pb := images(t, rng, 5, c, h, w)
	ab, err := dataset.Concat(a, b)
	if err != nil {
		t.Fatal(err)
	}
	index := []int{3, 4, 5, 0, 9, 10, 11, 2}
	sub, err := dataset.Subset(ab, index)
	if err != nil {
		t.Fatal(err)
	}
	both := slices.Concat(pa, pb)
	var picked []float32
	for _, i := range index {
		picked = append(picked, both[i*size:(i+1)*size]...)
	}
	// The mirror's pixel (i, ch, y, x) is the image's (i, ch, y, w−1−x).
	mirrored := make([]float32, len(pa))
	for i := range len(pa) / size {
		for ch := range c {
			for y := range h {
				for x := range w {
					mirrored[i*size+(ch*h+y)*w+x] = pa[i*size+(ch*h+y)*w+w-1-x]
				}
			}
		}
	}
	for _, tc := range []struct {
		name string
		src  dataset.Source
		want []float32
	}{
		{"images", a, pa},
		{"mirror", dataset.Mirror(a), mirrored},
		{"concat", ab, both},
		{"first 4", dataset.First(ab, 4), both[:4*size]},
		{"first of more than all", dataset.First(ab, 100), both},
		{"subset", sub, picked},
	} {
		if n, cc, hh, ww := tc.src.Shape(); n*size != len(tc.want) || cc != c || hh != h || ww != w {
			t.Errorf("%s: shape %d×%d×%d×%d, want %d×%d×%d×%d", tc.name, n, cc, hh, ww, len(tc.want)/size, c, h, w)
			continue
		}
		for _, batch := range []int{1, 3, 100} {
			got, err := readAll(tc.src, batch)
			if err != nil {
				t.Errorf("%s, batch %d: %v", tc.name, batch, err)
				continue
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s, batch %d: the images read differ from the images given", tc.name, batch)
			}
		}
	}
}

func TestSourceErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, _ := images(t, rng, 4, 1, 2, 2)
	odd, _ := images(t, rng, 4, 1, 3, 2)
	if _, err := dataset.NewImages(make([]float32, 7), 2, 1, 2, 2); err == nil {
		t.Error("NewImages took 7 values for 2 images of 1×2×2")
	}
	if _, err := dataset.Concat(a, odd); err == nil {
		t.Error("Concat joined images of 1×2×2 and 1×3×2")
	}
	for _, index := range [][]int{nil, {4}, {-1}} {
		if _, err := dataset.Subset(a, index); err == nil {
			t.Errorf("Subset took the indices %v of 4 images", index)
		}
	}
	for _, read := range []struct {
		src   dataset.Source
		n, at int
	}{{a, 2, 3}, {a, 1, -1}, {dataset.First(a, 2), 1, 2}} {
		if err := read.src.Read(make([]float32, read.n*4), read.at); err == nil {
			t.Errorf("a read of %d images at %d of %d succeeded", read.n, read.at, func() int { n, _, _, _ := read.src.Shape(); return n }())
		}
	}
}

// Two sources of images make one; its first images are read a batch at a
// time, as training reads them.
func Example() {
	train, _ := dataset.NewImages([]float32{1, 2, 3, 4}, 4, 1, 1, 1)
	extra, _ := dataset.NewImages([]float32{5, 6}, 2, 1, 1, 1)
	all, err := dataset.Concat(train, extra)
	if err != nil {
		fmt.Println(err)
		return
	}
	src := dataset.First(all, 5)
	n, _, _, _ := src.Shape()
	batch := make([]float32, 2)
	for i := 0; i < n; i += 2 {
		k := min(2, n-i)
		if err := src.Read(batch[:k], i); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(batch[:k])
	}
	// Output:
	// [1 2]
	// [3 4]
	// [5]
}
