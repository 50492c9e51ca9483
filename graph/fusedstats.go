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

// groupRows is how many positions at least the fused steps take through
// θ at once, several images' where one image has fewer: with 1 600 kernels
// of 3×3 on 400 channels (θ 23 MB, 7×7 positions an image) three images a
// block run the step at 47 % of peak, one at 37 %; where an image has this
// many, more images a block only crowd the cache (128 kernels of 9×9, 400
// positions: 54 % of peak alone, 49 % four to a block):
// BenchmarkStep/CIFARSecond/fast/EM, …/DefaultLayer/fast/EM.
const groupRows = 256

// imagesPerBlock returns how many images of u positions share a block of
// at most rows positions: enough for groupRows positions, one if an image
// has that many.
func imagesPerBlock(u, rows int) int { return max(1, min((groupRows+u-1)/u, rows/u)) }

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
	// the image model's normalises over every position of an image. An
	// image of fewer than groupRows positions shares its block with the
	// next images (group), as the block's size allows: each pass over θ,
	// and over the numerator, then serves them all.
	rows, group := u, 1
	if op.model == PatchModel {
		target := max(posteriorBlock, fusedBlockValues/k/posteriorBlock*posteriorBlock)
		rows = min(u, target)
		group = min(filterFlush, imagesPerBlock(u, target))
	}
	imgLen := c * ix.hp * ix.wp
	groupPos := ix.groupPositions(group)
	blockRows := max(rows, group*u)
	shards := min(n, filterShards)
	if op.numerator {
		sc.shards = resize(sc.shards, shards*d*k)
		clear(sc.shards)
	}
	parallel(shards, func(worker, lo, hi int) {
		b := sc.worker(worker, group*imgLen, blockRows*k)
		b.post = resize(b.post, blockRows*k)
		if op.model == ImageModel {
			b.joint = resize(b.joint, k*u)
		}
		if op.numerator {
			b.stats = resize(b.stats, d*k)
		}
		maxes := make([]float32, k)
		counts := make([]float64, k)
		biasRows := cv.rowsOfBias(blockRows)
		var run positionRun
		// numerator adds Sᵀ (elements × kernels) += patchesᵀ · γ for the
		// patches at pos and their posterior γ (positions × kernels).
		numerator := func(pos []int32) {
			b.pb.Pack(op.kern, len(pos), k, 1, gemm.Matrix{Data: b.post[:len(pos)*k], Stride: k})
			gemm.MulGather(gemm.Gather{Src: b.img, Rows: ix.elem, Cols: pos}, &b.pb, b.stats, k, &b.ws)
		}
		for s := lo; s < hi; s++ {
			var sum []float64
			if op.numerator {
				sum = sc.shards[s*d*k : (s+1)*d*k]
			}
			first, last := s*n/shards, (s+1)*n/shards
			clear(b.stats)
			flushed := first
			for i := first; i < last; i += group {
				g := min(group, last-i)
				for j := 0; j < g; j++ {
					ix.padImage(b.img[j*imgLen:(j+1)*imgLen], x[(i+j)*c*h*wd:(i+j+1)*c*h*wd])
				}
				switch {
				case group > 1:
					// Whole images in one block: each image's positions
					// are a run of its own.
					pos := groupPos[:g*u]
					blk := sc.logJoint(cv, b, biasRows, pos)
					for j := 0; j < g; j++ {
						run.start(maxes, counts)
						run.add(blk[j*u*k:], b.post[j*u*k:], k, u, u)
						run.finish(st, i+j, k)
					}
					if op.numerator {
						numerator(pos)
					}
				case op.model == PatchModel:
					run.start(maxes, counts)
					for p0 := 0; p0 < u; p0 += rows {
						pos := ix.pos[p0:min(p0+rows, u)]
						run.add(sc.logJoint(cv, b, biasRows, pos), b.post, k, len(pos), u)
						if op.numerator {
							numerator(pos)
						}
					}
					run.finish(st, i, k)
				default:
					// γ of the whole image (kernels × positions).
					blk := sc.logJoint(cv, b, biasRows, ix.pos)
					gemm.Transpose(b.joint, u, blk, k, u, k)
					st.image(i, b.joint, b.post, k, u, maxes)
					if op.numerator {
						b.pb.Pack(op.kern, u, k, 1, gemm.Matrix{Data: b.post, Stride: u, T: true})
						gemm.MulGather(gemm.Gather{Src: b.img, Rows: ix.elem, Cols: ix.pos}, &b.pb, b.stats, k, &b.ws)
					}
				}
				if op.numerator && (i+g-flushed >= filterFlush || i+g == last) {
					for j, v := range b.stats {
						sum[j] += float64(v)
					}
					clear(b.stats)
					flushed = i + g
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
