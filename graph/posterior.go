package graph

import (
	"fmt"
	"math"

	"calm/internal/vecmath"

	"github.com/chewxy/hm"
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
	op := posteriorOp{mapToMap: mapToMap{labelled("FusedPosterior", state)}, state: state}
	if post, err = G.ApplyOp(op, logJoint); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: fast posterior: %w", err)
	}
	n, k := logJoint.Shape()[0], logJoint.Shape()[1]
	if logMarg, err = G.ApplyOp(sideOp{opBase: labelled("LogMarginal", state), state: state, size: n}, post); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: fast posterior: %w", err)
	}
	if logCounts, err = G.ApplyOp(sideOp{opBase: labelled("LogCounts", state), state: state, size: k, counts: true}, post); err != nil {
		return nil, nil, nil, fmt.Errorf("graph: fast posterior: %w", err)
	}
	return logMarg, post, logCounts, nil
}

// labelled returns the base of an op named label and state's address.
func labelled(label string, state *posteriorState) opBase {
	b := newBase("%s/%p", label, state)
	b.label = label
	return b
}

// posteriorState holds the side results of one run of a posteriorOp.
type posteriorState struct {
	logMarg, logCounts *tensor.Dense
	rowLSE             []float64 // (N,K): log Σ_u exp L[n,k,u], then log γ's row sums
}

type posteriorOp struct {
	mapToMap
	state *posteriorState
}

// Do computes, for each image n, with rows r_k = L[n,k,·]:
//
//	m_k = max r_k,  e_k = exp(r_k − m_k),  λ_k = m_k + log Σ e_k   (float64)
//	ℓ_n = logsumexp_k λ_k,  γ[n,k,·] = e_k · exp(m_k − ℓ_n),  log count = λ_k − ℓ_n
//
// then b_k = logsumexp_n of the log counts, in image order. Each row is
// read from memory once; the other passes find it in cache.
func (op posteriorOp) Do(vals ...G.Value) (G.Value, error) {
	l, shape, err := float32s("fast posterior", vals[0])
	if err != nil {
		return nil, err
	}
	n, k, u := shape[0], shape[1], shape[2]*shape[3]
	out := op.out.get(tensor.Float32, shape...)
	g := out.Data().([]float32)
	st := op.state
	st.rowLSE = resize(st.rowLSE, n*k)
	if st.logMarg == nil || st.logMarg.Shape()[0] != n {
		st.logMarg = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(n))
	}
	if st.logCounts == nil || st.logCounts.Shape()[0] != k {
		st.logCounts = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(k))
	}
	marg := st.logMarg.Data().([]float32)
	parallel(n, func(_, lo, hi int) {
		maxes := make([]float32, k)
		for i := lo; i < hi; i++ {
			lam := st.rowLSE[i*k : (i+1)*k]
			for kk := 0; kk < k; kk++ {
				row, dst := l[(i*k+kk)*u:(i*k+kk+1)*u], g[(i*k+kk)*u:(i*k+kk+1)*u]
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
			ell := logSumExp64(lam)
			marg[i] = float32(ell)
			for kk := 0; kk < k; kk++ {
				if !math.IsInf(float64(maxes[kk]), -1) {
					vecmath.Scale(g[(i*k+kk)*u:(i*k+kk+1)*u], float32(math.Exp(float64(maxes[kk])-ell)))
				}
				lam[kk] -= ell
			}
		}
	})
	// b_k over the images, in image order; kernels split over the workers.
	counts := st.logCounts.Data().([]float32)
	parallel(k, func(_, lo, hi int) {
		col := make([]float64, n)
		for kk := lo; kk < hi; kk++ {
			for i := range col {
				col[i] = st.rowLSE[i*k+kk]
			}
			counts[kk] = float32(logSumExp64(col))
		}
	})
	return out, nil
}

// logSumExp64 returns log Σ exp(v): −Inf for none or all −Inf, +Inf if one
// is +Inf, NaN if one is NaN.
func logSumExp64(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		if x > m || x != x {
			m = x
		}
		if m != m {
			return m
		}
	}
	if math.IsInf(m, 0) {
		return m
	}
	var s float64
	for _, x := range v {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}

// sideOp reads one side result of a posteriorOp's run: the log marginal
// (N) or the log counts (K). Its input is the posterior node, so that it
// runs after it.
type sideOp struct {
	opBase
	state  *posteriorState
	size   int
	counts bool
}

func (op sideOp) Arity() int { return 1 }

func (op sideOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 4, Of: a}, G.TensorType{Dims: 1, Of: a})
}

func (op sideOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.Shape{op.size}, nil }

func (op sideOp) Do(...G.Value) (G.Value, error) {
	if op.counts {
		return op.state.logCounts, nil
	}
	return op.state.logMarg, nil
}
