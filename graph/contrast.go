package graph

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
)

// ContrastNormalize adds to y's graph a node that divides each position
// of y by the contrast of the image patch under it, then adds a bias per
// channel: for images x (N,C,H,W), patches of width w at padding 0 and
// y (N,D,H−w+1,W−w+1),
//
//	out[n,d,u] = y[n,d,u] / √(v[n,u] + eps) + bias[d]
//
// where v[n,u] is the variance of the C·w·w values of image n's patch at
// u. With y the convolution of x with filters whose values sum to 0 (so
// each patch's mean brightness drops out), out is the patch normalised
// for brightness and contrast and then mapped by the filters: Coates, Lee
// & Ng's per-patch normalisation in front of a linear map (their
// whitening), computed as a convolution. The variances are summed in
// float64 from integral images.
func ContrastNormalize(y, x, bias *G.Node, width int, eps float64) (*G.Node, error) {
	ys, xs, bs := y.Shape(), x.Shape(), bias.Shape()
	switch {
	case ys.Dims() != 4 || xs.Dims() != 4 || bs.Dims() != 1:
		return nil, fmt.Errorf("graph: contrast normalize: shapes %v, %v, %v: want (N,D,Uh,Uw), (N,C,H,W), (D)", ys, xs, bs)
	case width < 1 || ys[0] != xs[0] || bs[0] != ys[1] || ys[2] != xs[2]-width+1 || ys[3] != xs[3]-width+1:
		return nil, fmt.Errorf("graph: contrast normalize: maps %v of images %v under patches of width %d, bias %v", ys, xs, width, bs)
	case !(eps > 0):
		return nil, fmt.Errorf("graph: contrast normalize: ε = %v, want ε > 0", eps)
	}
	op := contrastOp{sameShape{newBase(sig(4, 4, 4, 1), "ContrastNormalize/w%d/eps%v", width, eps)}, width, eps}
	return apply("contrast normalize", op, y, x, bias)
}

type contrastOp struct {
	sameShape
	width int
	eps   float64
}

func (op contrastOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	y, x, bias, ys, xs := in[0], in[1], in[2], shapes[0], shapes[1]
	n, d, uh, uw := ys[0], ys[1], ys[2], ys[3]
	c, h, w := xs[1], xs[2], xs[3]
	o := out.Data().([]float32)
	u := uh * uw
	size := float64(c * op.width * op.width)
	parallel(n, func(_, lo, hi int) {
		// Integral images of x and x² summed over channels, (h+1)×(w+1).
		s1 := make([]float64, (h+1)*(w+1))
		s2 := make([]float64, (h+1)*(w+1))
		scale := make([]float32, u)
		for i := lo; i < hi; i++ {
			clear(s1)
			clear(s2)
			img := x[i*c*h*w : (i+1)*c*h*w]
			for r := 0; r < h; r++ {
				var row1, row2 float64
				for col := 0; col < w; col++ {
					var v1, v2 float64
					for ch := 0; ch < c; ch++ {
						v := float64(img[(ch*h+r)*w+col])
						v1 += v
						v2 += v * v
					}
					row1 += v1
					row2 += v2
					s1[(r+1)*(w+1)+col+1] = s1[r*(w+1)+col+1] + row1
					s2[(r+1)*(w+1)+col+1] = s2[r*(w+1)+col+1] + row2
				}
			}
			box := func(s []float64, r, col int) float64 {
				k := op.width
				return s[(r+k)*(w+1)+col+k] - s[r*(w+1)+col+k] - s[(r+k)*(w+1)+col] + s[r*(w+1)+col]
			}
			for r := 0; r < uh; r++ {
				for col := 0; col < uw; col++ {
					mean := box(s1, r, col) / size
					v := max(box(s2, r, col)/size-mean*mean, 0)
					scale[r*uw+col] = float32(1 / math.Sqrt(v+op.eps))
				}
			}
			for ch := 0; ch < d; ch++ {
				src, dst, b := y[(i*d+ch)*u:(i*d+ch+1)*u], o[(i*d+ch)*u:(i*d+ch+1)*u], bias[ch]
				for p, v := range src {
					dst[p] = v*scale[p] + b
				}
			}
		}
	})
	return out, nil
}
