package graph

import (
	"fmt"
	"math"
	"runtime"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The ops of this file give a layer whose kernels each have their own
// variance (Config.KernelVariances) its log joint, the full Gaussian log
// density of every patch up to the constant −(D/2)·log 2π,
//
//	L[n,k,u] = −½λ_k‖x_u − θ_k‖² + (D/2)·log λ_k + log π_k
//	         = Conv2d([x, Σ_c x_c²], [λ_kθ_k, −½λ_k], bias −½λ_k‖θ_k‖² + (D/2)·log λ_k + log π_k)
//
// with λ_k = 1/σ_k² and D = C·w·w. With one variance for every kernel the
// term −½λ‖x_u‖² is the same for every kernel and is left out (KernelBias);
// with a variance per kernel it decides the posterior, so the images carry
// their energy Σ_c x_c² as one more channel (EnergyChannel), and the kernels
// one more channel, −½λ_k everywhere (PrecisionKernels): the convolution
// then sums each patch's energy with the rest, and an op set's fused
// convolution and posterior need nothing new. The M-step's statistic for
// λ_k is KernelEnergy.

// Precisions is the input λ (K), one inverse variance 1/σ_k² per kernel, of
// a layer of configuration c with Config.KernelVariances.
func Precisions(c Config) Input {
	return Input{Name: "precision", Shape: func(int) tensor.Shape { return tensor.Shape{c.Kernels} }}
}

// EnergyChannel adds to x's graph a node appending to images x (N,C,H,W)
// their energy Σ_c x[n,c]² as channel C of (N,C+1,H,W), summed in float64.
func EnergyChannel(x *G.Node) (*G.Node, error) {
	if x.Shape().Dims() != 4 {
		return nil, fmt.Errorf("graph: energy channel: shape %v, want (N,C,H,W)", x.Shape())
	}
	if err := checkFloat32("energy channel", x); err != nil {
		return nil, err
	}
	return apply("energy channel", energyChannelOp{plusChannel{newBase(sig(4, 4), "EnergyChannel")}}, x)
}

// plusChannel gives an op whose output is its first input, (N,C,H,W),
// with one more channel, (N,C+1,H,W), its InferShape.
type plusChannel struct{ opBase }

func (op plusChannel) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0][0], s[0][1] + 1, s[0][2], s[0][3]}, nil
}

type energyChannelOp struct{ plusChannel }

func (op energyChannelOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	x, o := in[0], out.Data().([]float32)
	n, c, plane := shapes[0][0], shapes[0][1], shapes[0][2]*shapes[0][3]
	parallel(n, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			src, dst := x[i*c*plane:(i+1)*c*plane], o[i*(c+1)*plane:(i+1)*(c+1)*plane]
			copy(dst, src)
			for p := 0; p < plane; p++ {
				var e float64
				for ch := 0; ch < c; ch++ {
					v := float64(src[ch*plane+p])
					e += v * v
				}
				dst[c*plane+p] = float32(e)
			}
		}
	})
	return out, nil
}

// PrecisionKernels adds to θ's graph a node computing, for kernels θ
// (K,C,w,w) and precisions λ (K), the kernels (K,C+1,w,w) that convolve
// images with their EnergyChannel into λ_kθ_k·x_u − ½λ_k‖x_u‖²: channel c < C
// is λ_kθ_k, channel C is −½λ_k everywhere.
func PrecisionKernels(theta, precision *G.Node) (*G.Node, error) {
	ts, ps := theta.Shape(), precision.Shape()
	if ts.Dims() != 4 || ps.Dims() != 1 || ps[0] != ts[0] {
		return nil, fmt.Errorf("graph: precision kernels: shapes %v and %v, want (K,C,w,w) and (K)", ts, ps)
	}
	if err := checkFloat32("precision kernels", theta, precision); err != nil {
		return nil, err
	}
	return apply("precision kernels", precisionKernelsOp{plusChannel{newBase(sig(4, 4, 1), "PrecisionKernels")}}, theta, precision)
}

type precisionKernelsOp struct{ plusChannel }

func (op precisionKernelsOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	theta, lambda, o := in[0], in[1], out.Data().([]float32)
	k, plane := shapes[0][0], shapes[0][2]*shapes[0][3]
	if len(lambda) != k {
		return nil, fmt.Errorf("graph: precision kernels: %d precisions for %d kernels", len(lambda), k)
	}
	d := len(theta) / k
	for kk := 0; kk < k; kk++ {
		src, dst := theta[kk*d:(kk+1)*d], o[kk*(d+plane):(kk+1)*(d+plane)]
		for i, v := range src {
			dst[i] = lambda[kk] * v
		}
		for i := d; i < d+plane; i++ {
			dst[i] = -lambda[kk] / 2
		}
	}
	return out, nil
}

// PrecisionBias adds to θ's graph a node computing, for kernels θ (K,…)
// of D values each, log mixing weights logPrior (K) and precisions λ (K),
//
//	bias[k] = −½λ_k‖θ_k‖² + (D/2)·log λ_k + logPrior[k]
//
// in float64: with PrecisionKernels, the bias of the log joint of kernels
// of variance 1/λ_k each.
func PrecisionBias(theta, logPrior, precision *G.Node) (*G.Node, error) {
	ts, ps, ls := theta.Shape(), logPrior.Shape(), precision.Shape()
	if ts.Dims() < 2 || ps.Dims() != 1 || ps[0] != ts[0] || !ls.Eq(ps) {
		return nil, fmt.Errorf("graph: precision bias: shapes %v, %v and %v, want (K,…), (K) and (K)", ts, ps, ls)
	}
	if err := checkFloat32("precision bias", theta, logPrior, precision); err != nil {
		return nil, err
	}
	return apply("precision bias", precisionBiasOp{perKernel{newBase(sig(1, ts.Dims(), 1, 1), "PrecisionBias/%d", ts.Dims())}}, theta, logPrior, precision)
}

type precisionBiasOp struct{ perKernel }

func (op precisionBiasOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	theta, prior, lambda, o := in[0], in[1], in[2], out.Data().([]float32)
	k := shapes[0][0]
	if len(prior) != k || len(lambda) != k {
		return nil, fmt.Errorf("graph: precision bias: %d log weights and %d precisions for %d kernels", len(prior), len(lambda), k)
	}
	d := len(theta) / k
	for kk := range o {
		var s float64
		for _, v := range theta[kk*d : (kk+1)*d] {
			s += float64(v) * float64(v)
		}
		l := float64(lambda[kk])
		o[kk] = float32(-l*s/2 + float64(d)/2*math.Log(l) + float64(prior[kk]))
	}
	return out, nil
}

// KernelEnergy adds to the graph of images x (N,C,H,W) and their posterior
// γ (N,K,Uh,Uw) under kernels of width w with zero padding pad a node
// computing each kernel's posterior-weighted patch energy (K),
//
//	E_k = Σ_{n,u} γ[n,k,u]·‖x_{n,u}‖²
//
// in float64, where x_{n,u} is the patch at position u: what the M-step
// needs besides the numerator and the counts to set each kernel's
// variance.
func KernelEnergy(x, post *G.Node, width, pad int) (*G.Node, error) {
	xs, gs := x.Shape(), post.Shape()
	if xs.Dims() != 4 || gs.Dims() != 4 || xs[0] != gs[0] || width < 1 || pad < 0 ||
		xs[2]+2*pad-width+1 != gs[2] || xs[3]+2*pad-width+1 != gs[3] {
		return nil, fmt.Errorf("graph: kernel energy: images %v and posterior %v do not fit kernels of width %d with padding %d", xs, gs, width, pad)
	}
	if err := checkFloat32("kernel energy", x, post); err != nil {
		return nil, err
	}
	return apply("kernel energy", kernelEnergyOp{opBase: newBase(sig(1, 4, 4), "KernelEnergy/w%d/p%d", width, pad), width: width, pad: pad}, x, post)
}

type kernelEnergyOp struct {
	opBase
	width, pad int
}

func (op kernelEnergyOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[1][1]}, nil
}

func (op kernelEnergyOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	x, post, o := in[0], in[1], out.Data().([]float32)
	n, c, h, w := shapes[0][0], shapes[0][1], shapes[0][2], shapes[0][3]
	k, uh, uw := shapes[1][1], shapes[1][2], shapes[1][3]
	if uh != h+2*op.pad-op.width+1 || uw != w+2*op.pad-op.width+1 {
		return nil, fmt.Errorf("graph: kernel energy: images %v and posterior %v do not fit kernels of width %d", shapes[0], shapes[1], op.width)
	}
	sums := make([][]float64, runtime.GOMAXPROCS(0)) // by worker of parallel
	parallel(n, func(wk, lo, hi int) {
		sum := make([]float64, k)
		hp, wp := h+2*op.pad, w+2*op.pad
		energy := make([]float64, hp*wp)  // Σ_c x², zero-padded
		rows := make([]float64, uh*wp)    // sums over w rows
		patches := make([]float64, uh*uw) // ‖x_u‖²
		for i := lo; i < hi; i++ {
			clear(energy)
			for ch := 0; ch < c; ch++ {
				for y := 0; y < h; y++ {
					for xx := 0; xx < w; xx++ {
						v := float64(x[((i*c+ch)*h+y)*w+xx])
						energy[(y+op.pad)*wp+xx+op.pad] += v * v
					}
				}
			}
			for y := 0; y < uh; y++ {
				for xx := 0; xx < wp; xx++ {
					var s float64
					for dy := 0; dy < op.width; dy++ {
						s += energy[(y+dy)*wp+xx]
					}
					rows[y*wp+xx] = s
				}
			}
			for y := 0; y < uh; y++ {
				for xx := 0; xx < uw; xx++ {
					var s float64
					for dx := 0; dx < op.width; dx++ {
						s += rows[y*wp+xx+dx]
					}
					patches[y*uw+xx] = s
				}
			}
			for kk := 0; kk < k; kk++ {
				g := post[(i*k+kk)*uh*uw : (i*k+kk+1)*uh*uw]
				var s float64
				for u, e := range patches {
					s += float64(g[u]) * e
				}
				sum[kk] += s
			}
		}
		sums[wk] = sum
	})
	for kk := range o {
		var s float64
		for _, sum := range sums {
			if sum != nil {
				s += sum[kk]
			}
		}
		o[kk] = float32(s)
	}
	return out, nil
}
