package em_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"calm/em"
	"calm/graph"
)

// TestWhiteningPlanted whitens white noise of variance 4 (patch covariance
// 4·I): the ZCA filter must be the centre pixel scaled by 1/√(4+ε), the
// bias about 0, and the whitened images of about unit variance.
func TestWhiteningPlanted(t *testing.T) {
	const n, side, f, eps = 400, 12, 3, 0.1
	rng := rand.New(rand.NewPCG(5, 5))
	pix := make([]float32, n*side*side)
	for i := range pix {
		pix[i] = float32(2 * rng.NormFloat64())
	}
	src, err := em.NewImages(pix, n, 1, side, side)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := em.NewWhitening(src, f, eps, 20000, 1)
	if err != nil {
		t.Fatal(err)
	}
	filter := wh.Filter.Data().([]float32)
	// Covariance estimated from 20 000 patches: entries within ~3/√20000.
	for j, v := range filter {
		want := 0.0
		if j == 4 {
			want = 1 / math.Sqrt(4+eps)
		}
		if math.Abs(float64(v)-want) > 0.03 {
			t.Errorf("filter[%d] = %v, want %v", j, v, want)
		}
	}
	if math.Abs(float64(wh.Bias[0])) > 0.03 {
		t.Errorf("bias %v, want about 0", wh.Bias[0])
	}
	ws, err := wh.Source(src, nil, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	out := make([]float32, len(pix))
	if err := ws.Read(out, 0); err != nil {
		t.Fatal(err)
	}
	var ss float64
	var cnt int
	for i := 0; i < n; i++ {
		for y := 1; y < side-1; y++ { // away from the zero padding
			for x := 1; x < side-1; x++ {
				v := float64(out[(i*side+y)*side+x])
				ss += v * v
				cnt++
			}
		}
	}
	if v := ss / float64(cnt); math.Abs(v-4/(4+eps)) > 0.05 {
		t.Errorf("whitened variance %v, want %v", v, 4/(4+eps))
	}
}

// TestWhitenedSource compares the whitened images of correlated
// two-channel images, read whole and in pieces across batches, with the
// filter applied by float64 loops, for every op set.
func TestWhitenedSource(t *testing.T) {
	const n, c, h, w, f = 7, 2, 9, 8, 5
	rng := rand.New(rand.NewPCG(6, 6))
	pix := make([]float32, n*c*h*w)
	for i := range pix {
		pix[i] = float32(rng.NormFloat64())
		if i > 0 {
			pix[i] += 0.7 * pix[i-1] // correlated neighbours
		}
	}
	src, err := em.NewImages(pix, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := em.NewWhitening(src, f, 0.1, 500, 2)
	if err != nil {
		t.Fatal(err)
	}
	filter := wh.Filter.Data().([]float32)
	want := make([]float64, len(pix))
	for i := 0; i < n; i++ {
		for co := 0; co < c; co++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					s := float64(wh.Bias[co])
					for ci := 0; ci < c; ci++ {
						for a := 0; a < f; a++ {
							for b := 0; b < f; b++ {
								yy, xx := y+a-f/2, x+b-f/2
								if yy >= 0 && yy < h && xx >= 0 && xx < w {
									s += float64(filter[((co*c+ci)*f+a)*f+b]) * float64(pix[((i*c+ci)*h+yy)*w+xx])
								}
							}
						}
					}
					want[((i*c+co)*h+y)*w+x] = s
				}
			}
		}
	}
	for _, ops := range graph.OpSets() {
		ws, err := wh.Source(src, ops, 3)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(pix))
		if err := ws.Read(got, 0); err != nil {
			t.Fatal(err)
		}
		part := make([]float32, 4*c*h*w) // images 2–5: across two batches
		if err := ws.Read(part, 2); err != nil {
			t.Fatal(err)
		}
		ws.Close()
		for i, v := range got {
			if math.Abs(float64(v)-want[i]) > 1e-4*(1+math.Abs(want[i])) {
				t.Fatalf("%s: value %d: %v, float64 loops %v", ops.Name(), i, v, want[i])
			}
		}
		for i, v := range part {
			if v != got[2*c*h*w+i] {
				t.Fatalf("%s: a read of images 2–5 differs from the whole read at %d", ops.Name(), i)
			}
		}
	}
}
