package graph

import (
	"fmt"
	"math"

	"calm/internal/vecmath"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// posteriorParts builds the posterior from separate ops, the way every op
// set may: ℓ = LogSumExp(L, 1,2,3), logγ = SubRows(L, ℓ), γ = Exp(logγ),
// b = LogSumExp(logγ, 0,2,3).
func posteriorParts(ops Ops, logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error) {
	if err := checkMaps("posterior", logJoint); err != nil {
		return nil, nil, nil, err
	}
	if logMarg, err = ops.LogSumExp(logJoint, 1, 2, 3); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: log marginal: %w", err)
	}
	logPost, err := SubRows(logJoint, logMarg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("graph: log posterior: %w", err)
	}
	if post, err = Exp(logPost); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: posterior: %w", err)
	}
	if logCounts, err = ops.LogSumExp(logPost, 0, 2, 3); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: log counts: %w", err)
	}
	return logMarg, post, logCounts, nil
}

// checkMaps checks that x is a float32 map (N,K,Uh,Uw).
func checkMaps(op string, x *G.Node) error {
	if x.Shape().Dims() != 4 {
		return fmt.Errorf("graph: %s wants maps (N,K,Uh,Uw), got shape %v", op, x.Shape())
	}
	return checkFloat32(op, x)
}

// fusedPosterior is the Fast op set's posterior: one op computes γ and,
// on the side, ℓ and b, in passes over each image's K×Uh·Uw block while
// it sits in cache; two small ops read the side results off as nodes.
func fusedPosterior(logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error) {
	if err := checkMaps("posterior", logJoint); err != nil {
		return nil, nil, nil, err
	}
	// The three ops share state: their hashes (by name) carry its address
	// so that two posteriors in one graph stay apart.
	state := new(posteriorState)
	op := posteriorOp{sameShape: sameShape{labelled(sig(4, 4), "FusedPosterior", state)}, state: state}
	return withSides("fast posterior", op, state, logJoint)
}

// withSides adds op, which computes a posterior from logJoint and leaves
// the log marginal and log counts in state, and the ops that read those.
func withSides(what string, op G.Op, state *posteriorState, logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error) {
	if post, err = G.ApplyOp(op, logJoint); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: %s: %w", what, err)
	}
	if logMarg, logCounts, err = sides(state, post, logJoint.Shape()); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: %s: %w", what, err)
	}
	return logMarg, post, logCounts, nil
}

// labelled returns the base of an op named label and state's address.
func labelled(s signature, label string, state *posteriorState) opBase {
	b := newBase(s, "%s/%p", label, state)
	b.label = label
	return b
}

// posteriorState holds the side results of one run of a fused posterior.
type posteriorState struct {
	logMarg, logCounts *tensor.Dense
	rowLSE             []float64 // (N,K): log Σ_u exp L[n,k,u], then log γ's row sums
}

// prepare sizes the side results for n images of k kernels.
func (st *posteriorState) prepare(n, k int) {
	st.rowLSE = resize(st.rowLSE, n*k)
	if st.logMarg == nil || st.logMarg.Shape()[0] != n {
		st.logMarg = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(n))
	}
	if st.logCounts == nil || st.logCounts.Shape()[0] != k {
		st.logCounts = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(k))
	}
}

// image computes the posterior g of image i from its log joint l (k rows
// of u positions each), with rows r_k = l[k,·]:
//
//	m_k = max r_k,  e_k = exp(r_k − m_k),  λ_k = m_k + log Σ e_k   (float64)
//	ℓ_i = logsumexp_k λ_k,  g[k,·] = e_k · exp(m_k − ℓ_i),  log count = λ_k − ℓ_i
//
// in passes over l that, after the first, find it in cache. maxes is
// scratch of k values.
func (st *posteriorState) image(i int, l, g []float32, k, u int, maxes []float32) {
	lam := st.rowLSE[i*k : (i+1)*k]
	for kk := 0; kk < k; kk++ {
		row, dst := l[kk*u:(kk+1)*u], g[kk*u:(kk+1)*u]
		m := vecmath.Max(row)
		maxes[kk] = m
		if mf := float64(m); math.IsInf(mf, 0) || mf != mf {
			// A row of −Inf has no mass; +Inf or NaN poisons ℓ.
			lam[kk] = mf
			clear(dst)
			continue
		}
		lam[kk] = float64(m) + math.Log(vecmath.ExpSum(dst, row, m))
	}
	ell := rowLSE(lam)
	st.logMarg.Data().([]float32)[i] = float32(ell)
	for kk := 0; kk < k; kk++ {
		if !math.IsInf(float64(maxes[kk]), -1) {
			vecmath.Scale(g[kk*u:(kk+1)*u], float32(math.Exp(float64(maxes[kk])-ell)))
		}
		lam[kk] -= ell
	}
}

// A positionRun computes the patch model's posterior of image i from its
// log joint laid out positions × kernels, into the same layout: for each
// position's row r,
//
//	m = max r,  g = exp(r − m) / Σ exp(r − m),  λ = m + log Σ exp(r − m)
//
// with ℓ_i = Σ_u λ_u (float64) and the log counts log Σ_u g[u,k], summed
// in float32 over blocks of positions and in float64 across them. A
// position whose log joint is −Inf throughout has no mass: its posterior
// is zero and ℓ_i is −Inf.
//
// It takes the positions block by block (add), in order: the same bits
// however they are split into blocks.
type positionRun struct {
	acc    []float32
	counts []float64
	ell    float64
	prod   float64
	done   int // positions done
}

// posteriorBlock is the number of positions whose posterior is summed in
// float32 before it is added into the float64 counts.
const posteriorBlock = 16

func (r *positionRun) start(acc []float32, counts []float64) {
	clear(acc)
	clear(counts)
	*r = positionRun{acc: acc, counts: counts, prod: 1}
}

// add computes the posterior of the next rows of l (positions × k) into g,
// of an image of u positions in all.
func (r *positionRun) add(l, g []float32, k, rows, u int) {
	// ℓ_i = Σ_u m_u + log Π_u s_u, the product taken over a block (each
	// s_u is in [1, k]) so that one log serves the block.
	for q := 0; q < rows; q++ {
		row, dst := l[q*k:(q+1)*k], g[q*k:(q+1)*k]
		m := vecmath.Max(row)
		if math.IsInf(float64(m), -1) {
			clear(dst)
			r.ell = math.Inf(-1)
		} else {
			s := vecmath.ExpSum(dst, row, m)
			vecmath.ScaleAdd(dst, float32(1/s), r.acc)
			r.ell += float64(m)
			r.prod *= s
		}
		r.done++
		if r.done%posteriorBlock == 0 || r.done == u {
			for kk, v := range r.acc {
				r.counts[kk] += float64(v)
			}
			clear(r.acc)
			r.ell += math.Log(r.prod)
			r.prod = 1
		}
	}
}

// finish records image i's log marginal and log counts.
func (r *positionRun) finish(st *posteriorState, i, k int) {
	st.logMarg.Data().([]float32)[i] = float32(r.ell)
	for kk, c := range r.counts {
		st.rowLSE[i*k+kk] = math.Log(c)
	}
}

// counts sets the log counts b_k = logsumexp over the n images of their log
// counts, in image order; kernels are split over the workers.
func (st *posteriorState) counts(n, k int) {
	counts := st.logCounts.Data().([]float32)
	parallel(k, func(_, lo, hi int) {
		col := make([]float64, n)
		for kk := lo; kk < hi; kk++ {
			for i := range col {
				col[i] = st.rowLSE[i*k+kk]
			}
			counts[kk] = float32(rowLSE(col))
		}
	})
}

type posteriorOp struct {
	sameShape
	state *posteriorState
}

// Do computes the posterior of each image (posteriorState.image), then the
// log counts.
func (op posteriorOp) Do(vals ...G.Value) (G.Value, error) {
	st := op.state
	return st.run("fast posterior", op.out, vals[0], func(k, _ int) int { return k },
		func(i int, l, g []float32, k, u int, maxes []float32) { st.image(i, l, g, k, u, maxes) })
}

// run is the Do of an op that computes a posterior (N,K,Uh,Uw) from a log
// joint x and leaves the log marginal and log counts in st: image computes
// image i's posterior g from its log joint l (k rows of u positions), its
// log marginal and its rowLSE, with scratch of scratchLen(k, u) values;
// then the log counts are summed over the images.
func (st *posteriorState) run(name string, buf *outBuffer, x G.Value, scratchLen func(k, u int) int, image func(i int, l, g []float32, k, u int, scratch []float32)) (G.Value, error) {
	l, shape, err := float32s(name, x)
	if err != nil {
		return nil, err
	}
	n, k, u := shape[0], shape[1], shape[2]*shape[3]
	out := buf.get(tensor.Float32, shape...)
	g := out.Data().([]float32)
	st.prepare(n, k)
	parallel(n, func(_, lo, hi int) {
		scratch := make([]float32, scratchLen(k, u))
		for i := lo; i < hi; i++ {
			image(i, l[i*k*u:(i+1)*k*u], g[i*k*u:(i+1)*k*u], k, u, scratch)
		}
	})
	st.counts(n, k)
	return out, nil
}

// A side is one of the results a fused op leaves in a posteriorState.
type side int

const (
	sideLogMarg side = iota
	sideLogCounts
)

// sideOp reads one side result of a fused op's run: the log marginal (N)
// or the log counts (K). Its input is a node the fused op computes, so
// that it runs after it.
type sideOp struct {
	opBase
	state *posteriorState
	what  side
	shape tensor.Shape
}

func (op sideOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }

func (op sideOp) Do(...G.Value) (G.Value, error) {
	if op.what == sideLogCounts {
		return op.state.logCounts, nil
	}
	return op.state.logMarg, nil
}

// sides adds to the graph of after the side results of state, read after
// it: the log marginal (N) and the log counts (K) of maps of shape s.
func sides(state *posteriorState, after *G.Node, s tensor.Shape) (logMarg, logCounts *G.Node, err error) {
	in := after.Shape().Dims()
	if logMarg, err = G.ApplyOp(sideOp{opBase: labelled(sig(1, in), "LogMarginal", state), state: state, what: sideLogMarg, shape: tensor.Shape{s[0]}}, after); err != nil {
		return nil, nil, err
	}
	if logCounts, err = G.ApplyOp(sideOp{opBase: labelled(sig(1, in), "LogCounts", state), state: state, what: sideLogCounts, shape: tensor.Shape{s[1]}}, after); err != nil {
		return nil, nil, err
	}
	return logMarg, logCounts, nil
}

// PatchPosterior adds to the graph of a log joint L (N,K,Uh,Uw) the
// posterior of the patch model (PatchModel): for each position u of each
// image, the posterior over kernels
//
//	γ[n,k,u] = exp(L[n,k,u] − λ[n,u]),  λ[n,u] = logsumexp_k L[n,k,u]
//
// with the log marginal ℓ[n] = Σ_u λ[n,u] (N) and the log counts
// b[k] = log Σ_{n,u} γ[n,k,u] (K), summed in float64. One op computes all
// three in passes over each image's block while it is in cache.
func PatchPosterior(logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error) {
	if err := checkMaps("patch posterior", logJoint); err != nil {
		return nil, nil, nil, err
	}
	state := new(posteriorState)
	op := patchPosteriorOp{sameShape: sameShape{labelled(sig(4, 4), "PatchPosterior", state)}, state: state}
	return withSides("patch posterior", op, state, logJoint)
}

type patchPosteriorOp struct {
	sameShape
	state *posteriorState
}

// Do computes each image's posterior over kernels at each position
// (positionPosterior), its log marginal Σ_u log Σ_k exp L and its log
// counts, then the batch's log counts.
func (op patchPosteriorOp) Do(vals ...G.Value) (G.Value, error) {
	st := op.state
	return st.run("patch posterior", op.out, vals[0], func(_, u int) int { return 2 * u },
		func(i int, l, g []float32, k, u int, scratch []float32) {
			m, s := scratch[:u], scratch[u:]
			positionPosterior(l, g, m, s, k, u)
			var ell float64
			for p, r := range s {
				ell += float64(m[p]) - math.Log(float64(r))
			}
			st.logMarg.Data().([]float32)[i] = float32(ell)
			for kk := 0; kk < k; kk++ {
				var c float64
				for _, v := range g[kk*u : (kk+1)*u] {
					c += float64(v)
				}
				st.rowLSE[i*k+kk] = math.Log(c)
			}
		})
}
