package graph

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
)

// Triangle adds to logJoint's graph a node computing Coates, Lee & Ng's
// triangle encoding of each position's distances to the kernels: for the
// log joint L (N,K,Uh,Uw) at β = 1 and uniform weights, L = ⟨θ_k, x_u⟩ −
// ½‖θ_k‖², of images x (N,C,H,W) under kernels of width w at padding pad,
//
//	z[n,k,u] = ‖x_u − θ_k‖ = √(‖x_u‖² − 2·L[n,k,u])
//	f[n,k,u] = max(0, mean_j z[n,j,u] − z[n,k,u])
//
// where ‖x_u‖² is the energy of image n's patch at u, summed in float64
// from an integral image of the zero-padded image. A kernel nearer than
// the average to the patch scores its margin; the others score 0, so about
// half the values are 0 (Coates, Lee & Ng 2011, "An analysis of
// single-layer networks in unsupervised feature learning").
func Triangle(logJoint, x *G.Node, width, pad int) (*G.Node, error) {
	if err := checkMaps("triangle", logJoint); err != nil {
		return nil, err
	}
	ls, xs := logJoint.Shape(), x.Shape()
	if xs.Dims() != 4 || xs[0] != ls[0] || width < 1 || pad < 0 || ls[2] != xs[2]+2*pad-width+1 || ls[3] != xs[3]+2*pad-width+1 {
		return nil, fmt.Errorf("graph: triangle: log joint %v of images %v under kernels of width %d at padding %d", ls, xs, width, pad)
	}
	op := triangleOp{sameShape{newBase(sig(4, 4, 4), "Triangle/w%d/p%d", width, pad)}, width, pad}
	return apply("triangle", op, logJoint, x)
}

type triangleOp struct {
	sameShape
	width, pad int
}

func (op triangleOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	l, x, ls, xs := in[0], in[1], shapes[0], shapes[1]
	n, k, uh, uw := ls[0], ls[1], ls[2], ls[3]
	c, h, w := xs[1], xs[2], xs[3]
	u := uh * uw
	o := out.Data().([]float32)
	parallel(n, func(_, lo, hi int) {
		energy := make([]float64, u)
		mean := make([]float64, u)
		for i := lo; i < hi; i++ {
			patchEnergy(energy, x[i*c*h*w:(i+1)*c*h*w], c, h, w, op.width, op.pad, uh, uw)
			// The distances, kernel by kernel, and their mean per position.
			clear(mean)
			li, oi := l[i*k*u:(i+1)*k*u], o[i*k*u:(i+1)*k*u]
			for kk := 0; kk < k; kk++ {
				row, dst := li[kk*u:(kk+1)*u], oi[kk*u:(kk+1)*u]
				for p, v := range row {
					z := math.Sqrt(max(energy[p]-2*float64(v), 0))
					dst[p] = float32(z)
					mean[p] += z
				}
			}
			for p := range mean {
				mean[p] /= float64(k)
			}
			for kk := 0; kk < k; kk++ {
				dst := oi[kk*u : (kk+1)*u]
				for p, z := range dst {
					dst[p] = float32(max(mean[p]-float64(z), 0))
				}
			}
		}
	})
	return out, nil
}
