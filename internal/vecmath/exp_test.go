package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestImpls makes sure the tests below run every implementation this CPU
// has; the portable one is always there, last.
func TestImpls(t *testing.T) {
	var names []string
	for _, im := range impls {
		names = append(names, im.name)
	}
	t.Logf("implementations: %v", names)
	if names[len(names)-1] != "go" || (useAVX512 && names[0] != "avx512") {
		t.Errorf("implementations %v", names)
	}
}

// expInputs covers the whole float32 range of exp, the special values,
// and a length that is not a multiple of 8 or 16, so every vector path and
// every tail runs.
func expInputs() []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	var src []float32
	for i := 0; i < 100003; i++ {
		src = append(src, float32(rng.Float64()*(88.3+87.3)-87.3))
	}
	for i := 0; i < 1000; i++ {
		src = append(src, float32(rng.NormFloat64()))
	}
	inf := float32(math.Inf(1))
	special := []float32{0, -0, 1, -1, 88.3, 88.5, -87.3, -87.4, -100, -1000, 89, 1000, inf, -inf, float32(math.NaN())}
	// Special values both inside vector blocks and in the tail.
	src = append(special, src...)
	return append(src, special...)
}

// checkExp compares got[i] with math.Exp(x[i]) in float64.
func checkExp(t *testing.T, name string, x, got []float32) {
	t.Helper()
	for i, xv := range x {
		g := float64(got[i])
		want := math.Exp(float64(xv))
		switch {
		case xv != xv:
			if g == g {
				t.Fatalf("%s: exp(NaN) = %v", name, g)
			}
		case xv < expLo:
			if g != 0 {
				t.Fatalf("%s: exp(%v) = %v, want 0", name, xv, g)
			}
		case xv > expHi:
			if !math.IsInf(g, 1) {
				t.Fatalf("%s: exp(%v) = %v, want +Inf", name, xv, g)
			}
		default:
			// Cephes expf: below 2e-7 relative; the float32 result itself
			// rounds at 6e-8.
			if rel := math.Abs(g-want) / want; rel > 3e-7 {
				t.Fatalf("%s: exp(%v) = %v, want %v (relative error %.2g)", name, xv, g, want, rel)
			}
		}
	}
}

func TestExp(t *testing.T) {
	src := expInputs()
	for _, im := range impls {
		dst := make([]float32, len(src))
		im.exp(dst, src)
		checkExp(t, im.name, src, dst)
	}
}

// TestExpSum checks dst = exp(src − m) and the returned float64 sum, on
// lengths around the vector widths.
func TestExpSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, im := range impls {
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 169, 1000} {
			src := make([]float32, n)
			for i := range src {
				src[i] = float32(rng.NormFloat64() * 20)
			}
			m := float32(3.5)
			shifted := make([]float32, n)
			for i, v := range src {
				shifted[i] = v - m
			}
			dst := make([]float32, n+5)
			for i := range dst {
				dst[i] = -7 // beyond n it must stay so
			}
			sum := im.expSum(dst, src, m)
			checkExp(t, im.name, shifted, dst)
			var want float64
			for _, v := range shifted {
				want += math.Exp(float64(v))
			}
			if math.Abs(sum-want) > 3e-7*want {
				t.Errorf("%s n=%d: sum %v, want %v", im.name, n, sum, want)
			}
			if s := im.sumExp(src, m); math.Abs(s-want) > 3e-7*want {
				t.Errorf("%s n=%d: sumExp %v, want %v", im.name, n, s, want)
			}
			for i := n; i < len(dst); i++ {
				if dst[i] != -7 {
					t.Fatalf("%s n=%d: wrote dst[%d]", im.name, n, i)
				}
			}
		}
	}
}

func TestMaxScale(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, im := range impls {
		for _, n := range []int{0, 1, 8, 15, 16, 17, 169, 1001} {
			x := make([]float32, n+3)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			if n > 0 {
				x[rng.IntN(n)] = 50 // the maximum, somewhere
			}
			x[n] = 1000 // beyond the slice: never seen
			want := float32(math.Inf(-1))
			if n > 0 {
				want = 50
			}
			if got := im.max(x[:n]); got != want {
				t.Errorf("%s n=%d: max %v, want %v", im.name, n, got, want)
			}
			if n > 0 {
				x[n-1] = float32(math.NaN())
				if got := im.max(x[:n]); got == got {
					t.Errorf("%s n=%d: max of a slice holding NaN = %v", im.name, n, got)
				}
			}
			orig := append([]float32(nil), x...)
			im.scale(x[:n], -0.5)
			for i := range x {
				want := orig[i]
				if i < n {
					want *= -0.5
				}
				if x[i] != want && !(x[i] != x[i] && want != want) {
					t.Fatalf("%s n=%d: scale: x[%d] = %v, want %v", im.name, n, i, x[i], want)
				}
			}
		}
	}
}

// TestScaleAdd checks x·c and acc + x·c against float32 products and sums
// done one by one, on lengths that run every vector path and tail, and
// that nothing past the slice is touched.
func TestScaleAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, im := range impls {
		for _, n := range []int{0, 1, 15, 16, 17, 128, 1001} {
			x := make([]float32, n+2)
			acc := make([]float32, n+2)
			for i := range x {
				x[i], acc[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			x0, acc0 := append([]float32(nil), x...), append([]float32(nil), acc...)
			im.scaleAdd(x[:n], 0.37, acc[:n])
			for i := range x {
				wantX, wantAcc := x0[i], acc0[i]
				if i < n {
					wantX = x0[i] * 0.37
					wantAcc = acc0[i] + wantX
				}
				if x[i] != wantX || acc[i] != wantAcc {
					t.Fatalf("%s n=%d: x[%d] = %v, acc %v; want %v, %v", im.name, n, i, x[i], acc[i], wantX, wantAcc)
				}
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
	for _, im := range impls {
		b.Run(im.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for i := 0; i < b.N; i++ {
				im.exp(dst, src)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
		})
	}
}
