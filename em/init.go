package em

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"calm/dataset"
	"calm/graph"

	"gorgonia.org/tensor"
)

// InitTheta returns K kernels (c,w,w) drawn from N(0,1) with the given seed,
// as the reference draws its initial θ (the generators differ, so the draws
// do not match PyTorch's; start from a saved θ to compare runs).
func InitTheta(k, c, w int, seed uint64) *tensor.Dense {
	rng := rand.New(rand.NewPCG(seed, 0x63616c6d)) // "calm"
	v := make([]float32, k*c*w*w)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensor.New(tensor.WithShape(k, c, w, w), tensor.WithBacking(v))
}

// patchesPerImage is how many patches a sample takes from each image it
// reads: reading (and, for STL-10, whitening) an image costs more than
// cutting patches from it.
const patchesPerImage = 4

// SamplePatches returns count patches (C·w·w values each, in θ's layout)
// cut from the zero-padded images of src at uniformly drawn positions: the
// images are drawn without replacement (as many as count/4 of them), the
// draws seeded by seed.
func SamplePatches(src dataset.Source, cfg graph.Config, count int, seed uint64) ([]float32, error) {
	n, _, _, _ := src.Shape()
	rng := rand.New(rand.NewPCG(seed, 0x7061746368)) // "patch"
	images := min(n, (count+patchesPerImage-1)/patchesPerImage)
	order := rng.Perm(n)[:images]
	slices.Sort(order)
	d := cfg.KernelLen()
	out := make([]float32, count*d)
	img := make([]float32, cfg.ImageLen())
	uh, uw := cfg.Positions()
	for p := 0; p < count; p++ {
		i := p * images / count // the image of patch p
		if p == 0 || i != (p-1)*images/count {
			if err := src.Read(img, order[i]); err != nil {
				return nil, fmt.Errorf("em: sample patches: %w", err)
			}
		}
		cutPatch(out[p*d:(p+1)*d], img, cfg, rng.IntN(uh), rng.IntN(uw))
	}
	return out, nil
}

// cutPatch copies the patch at position (y, x) of the zero-padded image
// into dst (C·w·w).
func cutPatch(dst, img []float32, cfg graph.Config, y, x int) {
	w := cfg.Width
	for c := 0; c < cfg.Channels; c++ {
		for i := 0; i < w; i++ {
			for j := 0; j < w; j++ {
				yy, xx := y+i-cfg.Pad, x+j-cfg.Pad
				v := float32(0)
				if yy >= 0 && yy < cfg.Rows && xx >= 0 && xx < cfg.Cols {
					v = img[(c*cfg.Rows+yy)*cfg.Cols+xx]
				}
				dst[(c*w+i)*w+j] = v
			}
		}
	}
}

// initialTheta draws the initial kernels of s (normalised) for cfg.
func initialTheta(src dataset.Source, s Settings, cfg graph.Config) (*tensor.Dense, error) {
	if s.Init != nil {
		return s.Init, nil
	}
	if s.InitFrom == InitNormal {
		return InitTheta(cfg.Kernels, cfg.Channels, cfg.Width, s.Seed), nil
	}
	patches, err := SamplePatches(src, cfg, s.InitSample, s.Seed)
	if err != nil {
		return nil, err
	}
	var pick []int
	rng := rand.New(rand.NewPCG(s.Seed, 0x696e6974)) // "init"
	if s.InitFrom == InitPatches {
		pick = rng.Perm(s.InitSample)[:cfg.Kernels]
	} else {
		pick = kmeansPP(patches, cfg.KernelLen(), cfg.Kernels, rng)
	}
	d := cfg.KernelLen()
	theta := make([]float32, cfg.Kernels*d)
	for k, p := range pick {
		copy(theta[k*d:(k+1)*d], patches[p*d:(p+1)*d])
	}
	return tensor.New(tensor.WithShape(cfg.KernelShape()...), tensor.WithBacking(theta)), nil
}

// kmeansPP returns the indices of k of the points (rows of d values) chosen
// by K-means++ seeding: the first uniformly, each next with probability
// proportional to its squared distance from the nearest one chosen. When
// every remaining point coincides with a chosen one, the rest are drawn
// uniformly. The distances to each new point are computed on every core
// (each point's the same way on any number), the draws in order.
func kmeansPP(points []float32, d, k int, rng *rand.Rand) []int {
	n := len(points) / d
	dist := make([]float64, n)
	for i := range dist {
		dist[i] = math.Inf(1)
	}
	workers := min(runtime.GOMAXPROCS(0), max(1, n/256))
	pick := []int{rng.IntN(n)}
	var wg sync.WaitGroup
	for len(pick) < k {
		c := points[pick[len(pick)-1]*d:][:d]
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					dist[i] = math.Min(dist[i], squaredDistance(points[i*d:(i+1)*d], c))
				}
			}(w*n/workers, (w+1)*n/workers)
		}
		wg.Wait()
		var total float64
		for _, v := range dist {
			total += v
		}
		if total == 0 {
			pick = append(pick, rng.IntN(n))
			continue
		}
		r := rng.Float64() * total
		next := n - 1
		for i, v := range dist {
			if r -= v; r < 0 {
				next = i
				break
			}
		}
		pick = append(pick, next)
	}
	return pick
}

// squaredDistance returns |p − c|² in float64, in four running sums (the
// long rows of a layer above the first are otherwise bound by one sum's
// latency).
func squaredDistance(p, c []float32) float64 {
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(p); j += 4 {
		d0, d1, d2, d3 := float64(p[j]-c[j]), float64(p[j+1]-c[j+1]), float64(p[j+2]-c[j+2]), float64(p[j+3]-c[j+3])
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; j < len(p); j++ {
		dv := float64(p[j] - c[j])
		s0 += dv * dv
	}
	return (s0 + s1) + (s2 + s3)
}
