// Package vecmath evaluates float32 math functions over whole slices with
// AVX-512 or AVX2 where the CPU has them: the graph ops need two to three exponentials
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
func Exp(dst, src []float32) { best.exp(dst[:len(src)], src) }

// ExpSum sets dst[i] = exp(src[i] − m), as Exp computes it, and returns
// their sum accumulated in float64. With m the maximum of src it is the
// first half of a stable softmax.
func ExpSum(dst, src []float32, m float32) float64 { return best.expSum(dst[:len(src)], src, m) }

// SumExp returns Σ exp(x[i] − m) with each exponential rounded to float32
// (as Exp computes it) and the sum accumulated in float64. With m the
// maximum of x, it is the inner sum of a stable log-sum-exp.
func SumExp(x []float32, m float32) float64 { return best.sumExp(x, m) }

// Max returns the largest element of x (−Inf for an empty x), or NaN if x
// holds one.
func Max(x []float32) float32 { return best.max(x) }

// Scale sets x[i] *= c.
func Scale(x []float32, c float32) { best.scale(x, c) }

// ScaleAdd sets x[i] *= c, then acc[i] += x[i]; acc must be at least as
// long as x.
func ScaleAdd(x []float32, c float32, acc []float32) { best.scaleAdd(x, c, acc[:len(x)]) }

// impl is one implementation of the package's functions.
type impl struct {
	name   string
	exp    func(dst, src []float32)
	expSum func(dst, src []float32, m float32) float64
	sumExp func(x []float32, m float32) float64
	max    func(x []float32) float32
	scale  func(x []float32, c float32)
	// scaleAdd takes an acc as long as x.
	scaleAdd func(x []float32, c float32, acc []float32)
}

// impls are the implementations this CPU runs, fastest first; best is the
// first, the one the exported functions use. The tests run every one.
var (
	impls = available()
	best  = impls[0]
)

func available() []impl {
	var out []impl
	if useAVX512 {
		out = append(out, impl{name: "avx512", exp: expAVX512, expSum: expSumAVX512, sumExp: sumExpAVX512,
			max: func(x []float32) float32 {
				m, nan := maxAVX512(x)
				if nan {
					return float32(math.NaN())
				}
				return m
			},
			scale: scaleAVX512, scaleAdd: scaleAddAVX512})
	}
	if useAVX2 {
		out = append(out, impl{name: "avx2", exp: exp8(expAVX2), expSum: expSumAVX2, sumExp: sumExp8, max: max8, scale: scaleGo, scaleAdd: scaleAddGo})
	}
	return append(out, impl{name: "go", exp: expGo, expSum: expSumGo, sumExp: sumExpGo, max: maxGo, scale: scaleGo, scaleAdd: scaleAddGo})
}

// exp8 runs an AVX2 exp over the whole vectors of 8 and exp1 over the tail.
func exp8(vec func(dst, src []float32)) func(dst, src []float32) {
	return func(dst, src []float32) {
		n := len(src) &^ 7
		if n > 0 {
			vec(dst[:n], src[:n])
		}
		expGo(dst[n:], src[n:])
	}
}

func expSumAVX2(dst, src []float32, m float32) float64 {
	n := len(src) &^ 7
	var sum float64
	if n > 0 {
		sum = sumExpAVX2(src[:n], m)
		for i, v := range src[:n] {
			dst[i] = v - m
		}
		expAVX2(dst[:n], dst[:n])
	}
	return sum + expSumGo(dst[n:], src[n:], m)
}

func sumExp8(x []float32, m float32) float64 {
	n := len(x) &^ 7
	var sum float64
	if n > 0 {
		sum = sumExpAVX2(x[:n], m)
	}
	return sum + sumExpGo(x[n:], m)
}

func max8(x []float32) float32 {
	if len(x) < 8 {
		return maxGo(x)
	}
	n := len(x) &^ 7
	m, nan := maxAVX2(x[:n])
	if nan {
		return float32(math.NaN())
	}
	return max(m, maxGo(x[n:]))
}

func expGo(dst, src []float32) {
	for i, v := range src {
		dst[i] = exp1(v)
	}
}

func expSumGo(dst, src []float32, m float32) float64 {
	var sum float64
	for i, v := range src {
		dst[i] = exp1(v - m)
		sum += float64(dst[i])
	}
	return sum
}

func sumExpGo(x []float32, m float32) float64 {
	var sum float64
	for _, v := range x {
		sum += float64(exp1(v - m))
	}
	return sum
}

// maxGo returns the maximum of x, −Inf for none, NaN if x holds one.
func maxGo(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v != v {
			return v
		}
		m = max(m, v)
	}
	return m
}

func scaleGo(x []float32, c float32) {
	for i := range x {
		x[i] *= c
	}
}

func scaleAddGo(x []float32, c float32, acc []float32) {
	acc = acc[:len(x)]
	for i := range x {
		x[i] *= c
		acc[i] += x[i]
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
