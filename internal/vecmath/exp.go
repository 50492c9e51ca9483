// Package vecmath evaluates float32 math functions over whole slices with
// AVX2 where the CPU has it: the graph ops need two to three exponentials
// per element of a log joint of ten million values per batch, which
// math.Exp makes slower than the convolutions themselves.
package vecmath

import "math"

// The Cephes expf algorithm: exp(x) = 2ⁿ·exp(r), n = round(x·log₂e),
// r = x − n·ln2 (ln2 split in two for accuracy), exp(r) by a degree-7
// polynomial. Relative error below 2e-7 on [−87.3, 88.3].
const (
	expHi = 88.3762626647949 // above: +Inf (float32 overflows at 88.72; Cephes stops here)
	expLo = -87.3365447504   // below: 0 (no subnormals)
	log2e = 1.44269504088896341
	ln2Hi = 0.693359375
	ln2Lo = -2.12194440e-4
	expP0 = 1.9875691500e-4
	expP1 = 1.3981999507e-3
	expP2 = 8.3334519073e-3
	expP3 = 4.1665795894e-2
	expP4 = 1.6666665459e-1
	expP5 = 5.0000001201e-1
)

// Exp sets dst[i] = exp(src[i]) for every i < len(src); dst must be at
// least as long. It returns 0 below −87.34 (where float32 turns subnormal),
// +Inf above 88.376 (exp overflows float32 a little later, at 88.72) and
// NaN for NaN.
func Exp(dst, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if useAVX2 {
		n = len(src) &^ 7
		if n > 0 {
			expAVX2(dst[:n], src[:n])
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = exp1(src[i])
	}
}

// exp1 is the scalar form of the vector algorithm.
func exp1(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > expHi:
		return float32(math.Inf(1))
	case x < expLo:
		return 0
	}
	fx := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - fx*ln2Hi - fx*ln2Lo
	y := float32(expP0)
	y = y*r + expP1
	y = y*r + expP2
	y = y*r + expP3
	y = y*r + expP4
	y = y*r + expP5
	y = y*r*r + r + 1
	return y * math.Float32frombits(uint32(int32(fx)+127)<<23)
}

// SumExp returns Σ exp(x[i] − m) with each exponential rounded to float32
// (as Exp computes it) and the sum accumulated in float64. With m the
// maximum of x, it is the inner sum of a stable log-sum-exp.
func SumExp(x []float32, m float32) float64 {
	n := 0
	var sum float64
	if useAVX2 {
		n = len(x) &^ 7
		if n > 0 {
			sum = sumExpAVX2(x[:n], m)
		}
	}
	for _, v := range x[n:] {
		sum += float64(exp1(v - m))
	}
	return sum
}

// Max returns the largest element of x (−Inf for an empty x), or NaN if x
// holds one.
func Max(x []float32) float32 {
	m := float32(math.Inf(-1))
	n := 0
	if useAVX2 && len(x) >= 8 {
		n = len(x) &^ 7
		var nan bool
		if m, nan = maxAVX2(x[:n]); nan {
			return float32(math.NaN())
		}
	}
	for _, v := range x[n:] {
		if v != v {
			return v
		}
		m = max(m, v)
	}
	return m
}
