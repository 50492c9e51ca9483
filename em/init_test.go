package em_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"calm/dataset"
	"calm/em"
	"calm/graph"
)

// groups returns n images of c channels, 9×9, each blank or holding one of
// four 3×3 patterns at the centre (in turn): five distinct images.
func groups(t *testing.T, n, c int) dataset.Source {
	t.Helper()
	pix := make([]float32, n*c*81)
	for i := 0; i < n; i++ {
		g := i % 5
		if g == 4 {
			continue
		}
		// Pattern g lights the pixels (a, b) with (3a+b+ch) mod 4 = g: the
		// four patterns are orthogonal.
		for ch := 0; ch < c; ch++ {
			for a := 0; a < 3; a++ {
				for b := 0; b < 3; b++ {
					if (3*a+b+ch)%4 == g {
						pix[((i*c+ch)*9+3+a)*9+3+b] = 10
					}
				}
			}
		}
	}
	src, err := dataset.NewImages(pix, n, c, 9, 9)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// isPatch reports whether v (C·w·w) is a patch of some image of src at
// some position of the padded image.
func isPatch(t *testing.T, v []float32, src dataset.Source, cfg graph.Config) bool {
	t.Helper()
	n, c, h, w := src.Shape()
	img := make([]float32, c*h*w)
	for i := 0; i < n; i++ {
		if err := src.Read(img, i); err != nil {
			t.Fatal(err)
		}
		uh, uw := cfg.Positions()
		for y := 0; y < uh; y++ {
			for x := 0; x < uw; x++ {
				same := true
				for ch := 0; ch < c && same; ch++ {
					for a := 0; a < cfg.Width && same; a++ {
						for b := 0; b < cfg.Width && same; b++ {
							yy, xx := y+a-cfg.Pad, x+b-cfg.Pad
							var p float32
							if yy >= 0 && yy < h && xx >= 0 && xx < w {
								p = img[(ch*h+yy)*w+xx]
							}
							same = p == v[(ch*cfg.Width+a)*cfg.Width+b]
						}
					}
				}
				if same {
					return true
				}
			}
		}
	}
	return false
}

// TestInit draws initial kernels from the data, with 1 and 3 channels:
// every kernel must be a patch of the images, the draws must repeat with
// the seed, and K-means++ with kernels as large as the images, whose
// patches take exactly K = 5 distinct values, must pick each value once,
// since a patch equal to one already picked has distance 0.
func TestInit(t *testing.T) {
	for _, c := range []int{1, 3} {
		src := groups(t, 40, c)
		for _, method := range []em.InitMethod{em.InitPatches, em.InitKMeansPP} {
			t.Run(method.String()+"/C"+string(rune('0'+c)), func(t *testing.T) {
				s := em.Settings{Kernels: 5, Width: 9, Pad: 0, Batch: 40, MaxEpochs: 1, InitFrom: method, InitSample: 400, Seed: 3}
				_, cfg, err := s.Normalize(src.Shape())
				if err != nil {
					t.Fatal(err)
				}
				theta, err := em.InitialTheta(src, s)
				if err != nil {
					t.Fatal(err)
				}
				again, err := em.InitialTheta(src, s)
				if err != nil {
					t.Fatal(err)
				}
				th := theta.Data().([]float32)
				if !slices.Equal(th, again.Data().([]float32)) {
					t.Error("the same seed drew different kernels")
				}
				s.Seed = 4
				other, err := em.InitialTheta(src, s)
				if err != nil {
					t.Fatal(err)
				}
				if slices.Equal(th, other.Data().([]float32)) {
					t.Error("another seed drew the same kernels")
				}
				d := cfg.KernelLen()
				for k := 0; k < cfg.Kernels; k++ {
					if !isPatch(t, th[k*d:(k+1)*d], src, cfg) {
						t.Errorf("kernel %d is no patch of the images", k)
					}
				}
				if method == em.InitKMeansPP {
					if got := em.Distinct(th, cfg.Kernels, 0.999999); got != 5 {
						t.Errorf("K-means++ picked %d distinct kernels of 5 distinct patch values", got)
					}
				}
			})
		}
	}
}

// TestSamplePatches checks the sample's size and that its patches come
// from the images.
func TestSamplePatches(t *testing.T) {
	src := groups(t, 10, 2)
	cfg := graph.Config{Kernels: 1, Width: 4, Pad: 1, Channels: 2, Rows: 9, Cols: 9, Batch: 10}
	p, err := em.SamplePatches(src, cfg, 13, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 13*cfg.KernelLen() {
		t.Fatalf("%d values, want 13 patches of %d", len(p), cfg.KernelLen())
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, i := range rng.Perm(13)[:4] {
		if !isPatch(t, p[i*cfg.KernelLen():(i+1)*cfg.KernelLen()], src, cfg) {
			t.Errorf("sampled patch %d is no patch of the images", i)
		}
	}
}

// TestNoEpochs trains no epoch: the layer keeps the kernels it was
// seeded with, and has no log-likelihood.
func TestNoEpochs(t *testing.T) {
	src := groups(t, 40, 1)
	s := em.Settings{Kernels: 5, Width: 9, Batch: 40, MaxEpochs: em.NoEpochs, InitFrom: em.InitKMeansPP, InitSample: 100}
	res, err := em.Train(src, s)
	if err != nil {
		t.Fatal(err)
	}
	want, err := em.InitialTheta(src, s)
	if err != nil {
		t.Fatal(err)
	}
	if res.FinalLogLik != nil {
		t.Errorf("no epochs: the LL of the trained kernels measured, %v", *res.FinalLogLik)
	}
	if len(res.LogLik) != 0 || !slices.Equal(res.Theta.Data().([]float32), want.Data().([]float32)) {
		t.Errorf("no epochs: LL %v, θ changed: %v", res.LogLik, !slices.Equal(res.Theta.Data().([]float32), want.Data().([]float32)))
	}
	s.MaxEpochs = -3
	if _, err := em.Train(src, s); err == nil {
		t.Error("-3 epochs accepted")
	}
}

// TestSeededEvent: a run that does not resume tells its recorder, once and
// before any batch, the kernels it seeded and what seeding took.
func TestSeededEvent(t *testing.T) {
	var events []em.Event
	s := em.Settings{Kernels: 4, Width: 3, Batch: 16, MaxEpochs: 1, InitFrom: em.InitKMeansPP, InitSample: 40,
		Recorder: recordFunc(func(e em.Event) error { events = append(events, e); return nil })}
	if _, err := em.Train(groups(t, 40, 1), s); err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 || events[0].Seeded == nil {
		t.Fatalf("the first of %d events is not the seeding's", len(events))
	}
	if e := events[0]; e.Seeded.Config.Kernels != 4 || e.Elapsed <= 0 {
		t.Errorf("seeded %d kernels in %v; want 4 kernels in some time", e.Seeded.Config.Kernels, e.Elapsed)
	}
	for _, e := range events[1:] {
		if e.Seeded != nil {
			t.Errorf("a second seeding event, at epoch %d batch %d", e.Epoch, e.Batch)
		}
	}
}
