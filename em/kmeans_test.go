package em

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// TestKMeansPP compares the seeding's picks with K-means++ written plainly
// (one float64 sum a distance, one core) from the same random stream, on
// random points whose length is not a multiple of the four running sums,
// with one core and with four.
func TestKMeansPP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(8, 8))
	const n, d, k = 1500, 37, 40
	points := make([]float32, n*d)
	for i := range points {
		points[i] = float32(rng.NormFloat64())
	}
	plain := func(r *rand.Rand) []int {
		dist := make([]float64, n)
		for i := range dist {
			dist[i] = math.Inf(1)
		}
		pick := []int{r.IntN(n)}
		for len(pick) < k {
			c := points[pick[len(pick)-1]*d:][:d]
			var total float64
			for i := range dist {
				var s float64
				for j := 0; j < d; j++ {
					dv := float64(points[i*d+j] - c[j])
					s += dv * dv
				}
				dist[i] = math.Min(dist[i], s)
				total += dist[i]
			}
			u := r.Float64() * total
			next := n - 1
			for i, v := range dist {
				if u -= v; u < 0 {
					next = i
					break
				}
			}
			pick = append(pick, next)
		}
		return pick
	}
	want := plain(rand.New(rand.NewPCG(1, 2)))
	for _, procs := range []int{1, 4} {
		runtime.GOMAXPROCS(procs)
		if got := kmeansPP(points, d, k, rand.New(rand.NewPCG(1, 2))); !slices.Equal(got, want) {
			t.Errorf("GOMAXPROCS=%d: picked %v, want %v", procs, got, want)
		}
	}
}
