package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExp compares Exp (vector and scalar paths) with math.Exp in float64
// over the whole float32 range and the special values.
func TestExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var src []float32
	for i := 0; i < 100003; i++ { // not a multiple of 8: both paths run
		src = append(src, float32(rng.Float64()*(88.3+87.3)-87.3))
	}
	for i := 0; i < 1000; i++ {
		src = append(src, float32(rng.NormFloat64()))
	}
	inf := float32(math.Inf(1))
	special := []float32{0, -0, 1, -1, 88.3, 88.5, -87.3, -87.4, -100, -1000, 89, 1000, inf, -inf, float32(math.NaN())}
	// Place the special values both inside vector blocks and in the tail.
	src = append(special, src...)
	src = append(src, special...)
	dst := make([]float32, len(src))
	Exp(dst, src)
	for i, x := range src {
		got := float64(dst[i])
		want := math.Exp(float64(x))
		switch {
		case x != x:
			if got == got {
				t.Errorf("exp(NaN) = %v", got)
			}
		case x < expLo:
			if got != 0 {
				t.Errorf("exp(%v) = %v, want 0", x, got)
			}
		case x > expHi:
			if !math.IsInf(got, 1) {
				t.Errorf("exp(%v) = %v, want +Inf", x, got)
			}
		default:
			// Cephes expf: below 2e-7 relative; the float32 result itself
			// rounds at 6e-8.
			if rel := math.Abs(got-want) / want; rel > 3e-7 {
				t.Errorf("exp(%v) = %v, want %v (relative error %.2g)", x, got, want, rel)
			}
		}
		if s := exp1(x); s != dst[i] && !(s != s && dst[i] != dst[i]) {
			if rel := math.Abs(float64(s)-got) / math.Abs(got); rel > 2.5e-7 {
				t.Errorf("exp(%v): vector %v, scalar %v", x, dst[i], s)
			}
		}
	}
}

func BenchmarkExp(b *testing.B) {
	src := make([]float32, 10816)
	for i := range src {
		src[i] = -float32(i%200) / 10
	}
	dst := make([]float32, len(src))
	b.SetBytes(int64(4 * len(src)))
	for i := 0; i < b.N; i++ {
		Exp(dst, src)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
}
