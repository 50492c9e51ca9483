package graph

import (
	"fmt"
	"math"

	"calm/gemm"
	"calm/internal/vecmath"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A ConvPooler is an op set that pools features inside its convolution:
// for images x (N,C,H,W), kernels w (K,C,kh,kw) and bias (K) under
// padding pad, ConvPool gives what Pool gives of the maps p encodes —
// the posterior over kernels at each position (at p's temperature) of the
// log joint conv2d(x, w) + bias, or its triangle encoding — without the
// maps ever being written out: a batch holds its features, not its
// N·K·Uh·Uw maps. ConvPools says which poolings it pools in place; it
// answers another with an error wrapping ErrNotFused. An optional
// capability: the feature graphs build the maps and Pool them otherwise.
type ConvPooler interface {
	ConvPools(p Pooling) bool
	ConvPool(x, w, bias *G.Node, pad int, p Pooling) (*G.Node, error)
}

// ConvPools implements ConvPooler: the posterior's and the triangle
// encoding's mean poolings, and every pooling of the log joint.
func (Fast) ConvPools(p Pooling) bool {
	return p.Reduce == MeanCells && (p.Posterior || p.Triangle) || p.logJoint()
}

// logJoint reports whether p pools the log joint itself.
func (p Pooling) logJoint() bool { return !p.Posterior && !p.Triangle }

// ConvPool implements ConvPooler. Each image's positions go through in
// blocks of rows, as in the fused convolution: the log joint of a block,
// each row encoded while it is in cache, then added into float64 sums of
// each cell, in the order Pool sums them (the same features, bit for bit,
// as the maps pooled apart; for a tempered posterior, up to the rounding of
// the exponentials). The log joint's poolings keep one image's maps (K·U
// values) and pool each as Pool does: the same bits.
func (f Fast) ConvPool(x, w, bias *G.Node, pad int, p Pooling) (*G.Node, error) {
	if !f.ConvPools(p) {
		return nil, fmt.Errorf("graph: fast conv pool: %w: %s", ErrNotFused, p.Name())
	}
	if err := checkConv(x, w, bias); err != nil {
		return nil, err
	}
	op := convPoolOp{opBase: newBase(sig(4, 4, 4, 1), "FastConvPool/p%d/%s/%s", pad, p.Name(), f.kernel()), pad: pad, kern: f.kernel(), p: p}
	return apply("fast conv pool", op, x, w, bias)
}

type convPoolOp struct {
	opBase
	pad  int
	kern *gemm.MicroKernel
	p    Pooling
}

func (op convPoolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	maps := convShape(s[0], s[1], op.pad)
	if g := op.p.Grid; g < 1 || g > maps[2] || g > maps[3] {
		return nil, fmt.Errorf("graph: fast conv pool: a %d×%d grid over %d×%d positions leaves cells empty", g, g, maps[2], maps[3])
	}
	return op.p.shape(maps[0], maps[1]), nil
}

func (op convPoolOp) Do(vals ...G.Value) (G.Value, error) {
	cv, sc, out, err := op.startConv("fast conv pool", vals, op.InferShape, op.kern, op.pad)
	if err != nil {
		return nil, err
	}
	x, ix := cv.x, cv.ix
	n, c, h, wd, k, kh, uh, uw, u := cv.n, cv.c, cv.h, cv.w, cv.k, cv.kh, cv.uh, cv.uw, cv.u
	o := out.Data().([]float32)
	// Each position's cell at each level, and each cell's offset and size.
	per := op.p.cellsPerMap()
	cellOf := make([]int32, 0, u*len(op.p.levels()))
	var size []float64
	var grids []*cells
	for _, g := range op.p.levels() {
		cl := newCells(uh, uw, g)
		grids = append(grids, cl)
		first := len(size)
		for y := 0; y < uh; y++ {
			for xx := 0; xx < uw; xx++ {
				cellOf = append(cellOf, int32(first+cl.row[y]*g+cl.col[xx]))
			}
		}
		for cy := 0; cy < g; cy++ {
			for cx := 0; cx < g; cx++ {
				size = append(size, float64((cl.rowStarts[cy+1]-cl.rowStarts[cy])*(cl.colStarts[cx+1]-cl.colStarts[cx])))
			}
		}
	}
	levels := len(op.p.levels())
	// A block of rows goes through θ at once: an image's positions, a
	// block at a time, or (an image of fewer than groupRows positions)
	// the positions of a group of images side by side.
	rows := max(posteriorBlock, min(u, blockValues/k/posteriorBlock*posteriorBlock))
	group := imagesPerBlock(u, fusedBlockValues/k)
	if group > 1 {
		rows = group * u
	}
	imgLen := c * ix.hp * ix.wp
	groupPos := ix.groupPositions(group)
	beta := float32(1)
	if op.p.Tempered() {
		beta = float32(1 / op.p.Temperature)
	}
	parallel((n+group-1)/group, func(worker, lo, hi int) {
		b := sc.worker(worker, group*imgLen, rows*k)
		b.post = resize(b.post, rows*k)
		enc := make([]float32, k)
		z := make([]float64, k)
		sums := make([]float64, group*k*per) // each image's, side by side
		biasRows := cv.rowsOfBias(rows)
		var energy []float64
		if op.p.Triangle {
			energy = make([]float64, group*u)
		}
		var maps, e []float32 // the log joint of each image of a group, kernels × positions
		if op.p.logJoint() {
			maps, e = make([]float32, group*k*u), make([]float32, u)
		}
		for first := lo * group; first < min(hi*group, n); first += group {
			g := min(group, n-first)
			for j := 0; j < g; j++ {
				img := x[(first+j)*c*h*wd : (first+j+1)*c*h*wd]
				ix.padImage(b.img[j*imgLen:(j+1)*imgLen], img)
				if op.p.Triangle {
					patchEnergy(energy[j*u:(j+1)*u], img, c, h, wd, kh, op.pad, uh, uw)
				}
			}
			clear(sums)
			for p0 := 0; p0 < g*u; p0 += rows {
				r := min(rows, g*u-p0)
				blk := sc.logJoint(cv, b, biasRows, groupPos[p0:p0+r])
				if op.p.logJoint() {
					// Each image's rows of the block into its maps.
					for q0 := 0; q0 < r; {
						img, pos := (p0+q0)/u, (p0+q0)%u
						q1 := min(r, q0+u-pos)
						gemm.Transpose(maps[img*k*u+pos:], u, blk[q0*k:], k, q1-q0, k)
						q0 = q1
					}
					continue
				}
				for q := 0; q < r; q++ {
					row := blk[q*k : (q+1)*k]
					switch {
					case op.p.Triangle:
						triangleRow(enc, z, row, energy[p0+q])
					case op.p.Tempered():
						for j, v := range row {
							enc[j] = v * beta
						}
						posteriorRow(enc, enc)
					default:
						posteriorRow(enc, row)
					}
					// Cell by cell, the kernels side by side: a
					// contiguous add, the sums' order Pool's.
					img, pos := (p0+q)/u, (p0+q)%u
					cells := cellOf[pos:]
					for l := 0; l < levels; l++ {
						acc := sums[(img*per+int(cells[l*u]))*k:][:k]
						for j, v := range enc {
							acc[j] += float64(v)
						}
					}
				}
			}
			if op.p.logJoint() {
				for j := 0; j < g; j++ {
					// Each kernel's map as Pool pools it.
					for kk := 0; kk < k; kk++ {
						at := (first+j)*k + kk
						op.p.poolMap(o[at*per:(at+1)*per], maps[(j*k+kk)*u:(j*k+kk+1)*u], grids, e, sums)
					}
				}
				continue
			}
			for j := 0; j < g; j++ {
				oi := o[(first+j)*k*per : (first+j+1)*k*per]
				si := sums[j*k*per : (j+1)*k*per]
				for f := range oi {
					kk, cell := f/per, f%per
					v := float32(si[cell*k+kk] / size[cell])
					if op.p.Root {
						v = float32(math.Sqrt(float64(v)))
					}
					oi[f] = v
				}
			}
		}
	})
	return out, nil
}

// posteriorRow sets dst to the softmax of one position's log joint row
// (its posterior over kernels), as the fused posterior computes it; a row
// of −Inf has no mass, and gets zeros.
func posteriorRow(dst, row []float32) {
	m := vecmath.Max(row)
	if math.IsInf(float64(m), -1) {
		clear(dst)
		return
	}
	s := vecmath.ExpSum(dst, row, m)
	vecmath.Scale(dst, float32(1/s))
}

// triangleRow sets dst to the triangle encoding of one position's log
// joint row, whose patch has energy e, as Triangle computes it (z is
// scratch of the row's length).
func triangleRow(dst []float32, z []float64, row []float32, e float64) {
	var mean float64
	for j, v := range row {
		z[j] = math.Sqrt(max(e-2*float64(v), 0))
		dst[j] = float32(z[j])
		mean += z[j]
	}
	mean /= float64(len(row))
	for j, v := range dst {
		dst[j] = float32(max(mean-float64(v), 0))
	}
}

// patchEnergy sets e[u] to the energy Σ x² of the patch of width kw at each
// of the uh×uw positions of image img (c,h,w) under zero padding pad,
// summed in float64 from an integral image, as Triangle does.
func patchEnergy(e []float64, img []float32, c, h, w, kw, pad, uh, uw int) {
	hp, wp := h+2*pad, w+2*pad
	integral := make([]float64, (hp+1)*(wp+1))
	for r := 0; r < hp; r++ {
		var row float64
		for col := 0; col < wp; col++ {
			if y, xx := r-pad, col-pad; y >= 0 && y < h && xx >= 0 && xx < w {
				for ch := 0; ch < c; ch++ {
					v := float64(img[(ch*h+y)*w+xx])
					row += v * v
				}
			}
			integral[(r+1)*(wp+1)+col+1] = integral[r*(wp+1)+col+1] + row
		}
	}
	for r := 0; r < uh; r++ {
		for col := 0; col < uw; col++ {
			s := kw
			e[r*uw+col] = integral[(r+s)*(wp+1)+col+s] - integral[r*(wp+1)+col+s] - integral[(r+s)*(wp+1)+col] + integral[r*(wp+1)+col]
		}
	}
}
