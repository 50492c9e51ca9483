package graph

import (
	"fmt"

	"calm/gemm"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// An ExpectedStatser is an op set that computes a batch's E-step and the
// M-step's numerator in one op, image by image (an optional capability,
// used by EM's training when present): ExpectedStats(x, w, bias, pad, m)
// must give the M-step numerator S = Conv2dFilter(x, γ, pad) (K,C,kh,kw),
// the log marginal (N) and the log counts (K) that Conv2d(x, w, bias,
// pad), model m's posterior γ and Conv2dFilter give, without writing γ
// or the log joint out. For a model it does not fuse it returns an error
// wrapping ErrNotFused.
//
// LogMarginal is ExpectedStats without the numerator: the log marginal and
// log counts alone, for a pass that measures the log-likelihood.
type ExpectedStatser interface {
	ExpectedStats(x, w, bias *G.Node, pad int, m Model) (numer, logMarg, logCounts *G.Node, err error)
	LogMarginal(x, w, bias *G.Node, pad int, m Model) (logMarg, logCounts *G.Node, err error)
}

// ExpectedStats implements ExpectedStatser for both models: each image's
// log joint is computed a block of positions at a time, turned into its
// posterior while in cache, and used at once as the filter of the M-step's
// product with the same positions' patches. Only the numerator, K·C·kh·kw
// values, leaves the op.
func (f Fast) ExpectedStats(x, w, bias *G.Node, pad int, m Model) (numer, logMarg, logCounts *G.Node, err error) {
	return f.fusedStats(x, w, bias, pad, m, true)
}

// LogMarginal implements ExpectedStatser with the op of ExpectedStats
// that leaves the M-step's product out; its own output is a placeholder
// (one value).
func (f Fast) LogMarginal(x, w, bias *G.Node, pad int, m Model) (logMarg, logCounts *G.Node, err error) {
	_, logMarg, logCounts, err = f.fusedStats(x, w, bias, pad, m, false)
	return logMarg, logCounts, err
}

func (f Fast) fusedStats(x, w, bias *G.Node, pad int, m Model, numerator bool) (numer, logMarg, logCounts *G.Node, err error) {
	if m != ImageModel && m != PatchModel {
		return nil, nil, nil, fmt.Errorf("graph: fast expected stats: %w: %v", ErrNotFused, m)
	}
	if err := checkConv(x, w, bias); err != nil {
		return nil, nil, nil, err
	}
	xs, ws := x.Shape(), w.Shape()
	if ws[2] > xs[2]+2*pad || ws[3] > xs[3]+2*pad {
		return nil, nil, nil, fmt.Errorf("graph: fast expected stats: kernels %v larger than padded images %v (pad %d)", ws, xs, pad)
	}
	state := new(posteriorState)
	name, out := "FastExpectedStats", 4
	if !numerator {
		name, out = "FastLogMarginal", 1
	}
	op := fusedStatsOp{opBase: labelled(sig(out, 4, 4, 1), fmt.Sprintf("%s/%s/p%d/%s", name, m, pad, f.kernel()), state),
		pad: pad, kern: f.kernel(), state: state, model: m, numerator: numerator}
	if numer, err = G.ApplyOp(op, x, w, bias); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: fast expected stats: %w", err)
	}
	if logMarg, logCounts, err = sides(state, numer, convShape(xs, ws, pad)); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: fast expected stats: %w", err)
	}
	return numer, logMarg, logCounts, nil
}

// fusedBlockValues is about how many values of a positions × kernels block
// the fused steps keep in cache at once (1 MiB of float32): four times the
// convolution's (blockValues), since the M-step's product over a block's
// positions gains from more of them (on 1 600 kernels of CIFAR-10's
// whitened patches, 5 % faster than at blockValues; 1<<17 close to it,
// 1<<19 no faster than blockValues, 1<<20 slower:
// BenchmarkStep/CIFARPatches/fast/EM).
const fusedBlockValues = 1 << 18

// fusedStatsOp is Fast.ExpectedStats's op: inputs x, w, bias; output the
// numerator (K,C,kh,kw), the log marginal and log counts left in state.
// Without numerator (Fast.LogMarginal) it leaves the M-step's product out
// and its output is one zero.
type fusedStatsOp struct {
	opBase
	pad       int
	kern      *gemm.MicroKernel
	state     *posteriorState
	model     Model
	numerator bool
}

func (op fusedStatsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	if !op.numerator {
		return tensor.Shape{1}, nil
	}
	return s[1].Clone(), nil
}

// Do sums the numerator in filterShards fixed shards of images (float32
// over filterFlush images, then float64), added in shard order: the same
// bits for any number of workers.
func (op fusedStatsOp) Do(vals ...G.Value) (G.Value, error) {
	cv, sc, out, err := op.startConv("fast expected stats", vals, op.InferShape, op.kern, op.pad)
	if err != nil {
		return nil, err
	}
	x, ix := cv.x, cv.ix
	n, c, h, wd, k, d, u := cv.n, cv.c, cv.h, cv.w, cv.k, cv.d, cv.u
	st := op.state
	st.prepare(n, k)
	// The patch model's posterior goes a block of positions at a time;
	// the image model's normalises over every position of an image.
	rows := u
	if op.model == PatchModel {
		rows = max(posteriorBlock, min(u, fusedBlockValues/k/posteriorBlock*posteriorBlock))
	}
	shards := min(n, filterShards)
	if op.numerator {
		sc.shards = resize(sc.shards, shards*d*k)
		clear(sc.shards)
	}
	parallel(shards, func(worker, lo, hi int) {
		b := sc.worker(worker, c*ix.hp*ix.wp, rows*k)
		b.post = resize(b.post, rows*k)
		if op.model == ImageModel {
			b.joint = resize(b.joint, k*u)
		}
		if op.numerator {
			b.stats = resize(b.stats, d*k)
		}
		maxes := make([]float32, k)
		counts := make([]float64, k)
		biasRows := cv.rowsOfBias(rows)
		var run positionRun
		for s := lo; s < hi; s++ {
			var sum []float64
			if op.numerator {
				sum = sc.shards[s*d*k : (s+1)*d*k]
			}
			first, last := s*n/shards, (s+1)*n/shards
			clear(b.stats)
			for i := first; i < last; i++ {
				ix.padImage(b.img, x[i*c*h*wd:(i+1)*c*h*wd])
				if op.model == PatchModel {
					run.start(maxes, counts)
				}
				for p0 := 0; p0 < u; p0 += rows {
					r := min(rows, u-p0)
					blk := sc.logJoint(cv, b, biasRows, p0, r)
					if op.model == PatchModel {
						// γ of these positions (positions × kernels), then
						// Sᵀ (elements × kernels) += patchesᵀ · γ.
						run.add(blk, b.post, k, r, u)
						if op.numerator {
							b.pb.Pack(op.kern, r, k, 1, gemm.Matrix{Data: b.post[:r*k], Stride: k})
						}
					} else {
						// γ of the whole image (kernels × positions).
						gemm.Transpose(b.joint, u, blk, k, u, k)
						st.image(i, b.joint, b.post, k, u, maxes)
						if op.numerator {
							b.pb.Pack(op.kern, u, k, 1, gemm.Matrix{Data: b.post, Stride: u, T: true})
						}
					}
					if op.numerator {
						gemm.MulGather(gemm.Gather{Src: b.img, Rows: ix.elem, Cols: ix.pos[p0 : p0+r]}, &b.pb, b.stats, k, &b.ws)
					}
				}
				if op.model == PatchModel {
					run.finish(st, i, k)
				}
				if op.numerator && ((i-first+1)%filterFlush == 0 || i == last-1) {
					for j, v := range b.stats {
						sum[j] += float64(v)
					}
					clear(b.stats)
				}
			}
		}
	})
	st.counts(n, k)
	if op.numerator {
		sc.sumShards(out.Data().([]float32), shards, d, k)
	}
	return out, nil
}
