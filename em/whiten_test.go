package em_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"calm/dataset"
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
	src, err := dataset.NewImages(pix, n, 1, side, side)
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
	src, err := dataset.NewImages(pix, n, c, h, w)
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

// TestPatchWhitening whitens the 3×3 patches of smooth two-channel images:
// the whitened image has a channel per patch value, each position's
// channels are the patch normalised and mapped as float64 loops do it with
// the whitening's filter and bias, read whole or across batches, and over
// all positions the whitened patches have covariance I − 11ᵀ/D, the
// identity on the patches a normalisation leaves (which all sum to 0).
func TestPatchWhitening(t *testing.T) {
	const n, c, h, w, f, eps = 600, 2, 10, 9, 3, 1e-4
	const d, uh, uw = c * f * f, h - f + 1, w - f + 1
	rng := rand.New(rand.NewPCG(8, 8))
	pix := make([]float32, n*c*h*w)
	for i := range pix {
		pix[i] = float32(rng.NormFloat64())
		if i > 0 {
			pix[i] += 0.6 * pix[i-1]
		}
		pix[i] += 0.5 // a brightness the normalisation removes
	}
	src, err := dataset.NewImages(pix, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := em.NewPatchWhitening(src, f, eps, em.DefaultContrast, 4*n, 3)
	if err != nil {
		t.Fatal(err)
	}
	if gc, gh, gw := wh.Shape(c, h, w); gc != d || gh != uh || gw != uw {
		t.Fatalf("shape %d×%d×%d, want %d×%d×%d", gc, gh, gw, d, uh, uw)
	}
	ws, err := wh.Source(src, nil, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if gn, gc, gh, gw := ws.Shape(); gn != n || gc != d || gh != uh || gw != uw {
		t.Fatalf("source shape %d×%d×%d×%d, want %d×%d×%d×%d", gn, gc, gh, gw, n, d, uh, uw)
	}
	out := make([]float32, n*d*uh*uw)
	if err := ws.Read(out[:5*d*uh*uw], 0); err != nil {
		t.Fatal(err)
	}
	if err := ws.Read(out[5*d*uh*uw:], 5); err != nil { // across batches of 64
		t.Fatal(err)
	}
	filter := wh.Filter.Data().([]float32)
	cov := make([]float64, d*d)
	var count float64
	for i := 0; i < n; i++ {
		for y := 0; y < uh; y++ {
			for x := 0; x < uw; x++ {
				patch := make([]float64, 0, d)
				for ch := 0; ch < c; ch++ {
					for a := 0; a < f; a++ {
						for b := 0; b < f; b++ {
							patch = append(patch, float64(pix[((i*c+ch)*h+y+a)*w+x+b]))
						}
					}
				}
				var mean, v float64
				for _, p := range patch {
					mean += p / d
				}
				for _, p := range patch {
					v += (p - mean) * (p - mean) / d
				}
				s := math.Sqrt(v + em.DefaultContrast)
				got := make([]float64, d)
				for o := 0; o < d; o++ {
					want := float64(wh.Bias[o])
					for j, p := range patch {
						want += float64(filter[o*d+j]) * (p - mean) / s
					}
					got[o] = float64(out[((i*d+o)*uh+y)*uw+x])
					if math.Abs(got[o]-want) > 1e-4*(1+math.Abs(want)) {
						t.Fatalf("image %d (%d,%d) channel %d: %v, want %v", i, y, x, o, got[o], want)
					}
				}
				for a := range got {
					for b := range got {
						cov[a*d+b] += got[a] * got[b]
					}
				}
				count++
			}
		}
	}
	// The whitening was estimated from 2 400 of the 25 200 patches: the
	// covariance of them all is I − 11ᵀ/D up to the sample's noise.
	for a := 0; a < d; a++ {
		for b := 0; b < d; b++ {
			want := -1.0 / d
			if a == b {
				want += 1
			}
			if g := cov[a*d+b] / count; math.Abs(g-want) > 0.1 {
				t.Errorf("covariance[%d,%d] = %v, want %v", a, b, g, want)
			}
		}
	}
}

// TestImageFilters: a kernel on whitened images is a filter on the images.
// Away from the whitening's zero padding, the kernel's response to the
// whitened image must equal its image filter's response to the image
// (plus the whitening's bias weighed by the kernel), by float64 loops.
func TestImageFilters(t *testing.T) {
	const n, c, h, w, f, kw, k = 3, 2, 12, 11, 3, 4, 5
	rng := rand.New(rand.NewPCG(14, 15))
	pix := make([]float32, n*c*h*w)
	for i := range pix {
		pix[i] = float32(rng.NormFloat64())
	}
	src, err := dataset.NewImages(pix, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := em.NewWhitening(src, f, 0.1, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wh.Source(src, nil, n)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	white := make([]float32, len(pix))
	if err := ws.Read(white, 0); err != nil {
		t.Fatal(err)
	}
	theta := make([]float32, k*c*kw*kw)
	for i := range theta {
		theta[i] = float32(rng.NormFloat64())
	}
	g, side, err := wh.ImageFilters(theta, k, kw)
	if err != nil {
		t.Fatal(err)
	}
	if side != kw+f-1 {
		t.Fatalf("filters of width %d, want %d", side, kw+f-1)
	}
	at := func(img []float32, i, ch, y, x int) float64 { return float64(img[((i*c+ch)*h+y)*w+x]) }
	for i := 0; i < n; i++ {
		for kk := 0; kk < k; kk++ {
			var bias float64
			for ch := 0; ch < c; ch++ {
				for j := 0; j < kw*kw; j++ {
					bias += float64(theta[(kk*c+ch)*kw*kw+j]) * float64(wh.Bias[ch])
				}
			}
			// Positions whose whitened patch never reads the padding.
			for y := f / 2; y+kw+f/2 <= h; y++ {
				for x := f / 2; x+kw+f/2 <= w; x++ {
					var onWhite, onImage float64
					for ch := 0; ch < c; ch++ {
						for a := 0; a < kw; a++ {
							for b := 0; b < kw; b++ {
								onWhite += float64(theta[((kk*c+ch)*kw+a)*kw+b]) * at(white, i, ch, y+a, x+b)
							}
						}
						for a := 0; a < side; a++ {
							for b := 0; b < side; b++ {
								onImage += float64(g[((kk*c+ch)*side+a)*side+b]) * at(pix, i, ch, y-f/2+a, x-f/2+b)
							}
						}
					}
					if want := onImage + bias; math.Abs(onWhite-want) > 1e-4*(1+math.Abs(want)) {
						t.Fatalf("image %d kernel %d at (%d,%d): %v on the whitened image, %v by its image filter", i, kk, y, x, onWhite, want)
					}
				}
			}
		}
	}
}
