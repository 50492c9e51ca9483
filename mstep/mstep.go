package mstep

import (
	"fmt"
	"math"
	"strings"

	"calm/graph"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is the compiled M-step numerator of one layer configuration.
type Graph struct {
	step *graph.Step
}

// New returns the M-step graph of cfg built from ops, compiled for a full
// batch. With cfg.KernelVariances it has a second output, each kernel's
// posterior-weighted patch energy (graph.KernelEnergy).
func New(cfg graph.Config, ops graph.Ops) (*Graph, error) {
	step, err := graph.NewStep(cfg, []graph.Input{graph.Images(cfg), graph.Posterior(cfg)},
		func(_ *G.ExprGraph, in []*G.Node) ([]*G.Node, error) {
			numer, err := ops.Conv2dFilter(in[0], in[1], cfg.Pad)
			if err != nil {
				return nil, fmt.Errorf("mstep: numerator: %w", err)
			}
			if !cfg.KernelVariances {
				return []*G.Node{numer}, nil
			}
			energy, err := graph.KernelEnergy(in[0], in[1], cfg.Width, cfg.Pad)
			if err != nil {
				return nil, fmt.Errorf("mstep: %w", err)
			}
			return []*G.Node{numer, energy}, nil
		})
	if err != nil {
		return nil, fmt.Errorf("mstep: %w", err)
	}
	return &Graph{step: step}, nil
}

// Step returns the compiled step, to inspect its graph.
func (g *Graph) Step() *graph.Step { return g.step }

// Run returns this batch's numerator S (K,C,w,w) for images x (n,C,H,W) and
// their posterior γ (n,K,Uh,Uw). The result belongs to g and is overwritten
// by the next Run.
func (g *Graph) Run(x, post *tensor.Dense) (*tensor.Dense, error) {
	numer, _, err := g.RunWithEnergy(x, post)
	return numer, err
}

// RunWithEnergy is Run that also returns, for a layer of
// graph.Config.KernelVariances, each kernel's weighted patch energy
// E_k = Σ_{n,u} γ[n,k,u]·‖x_{n,u}‖² (K; nil for other layers), which
// belongs to g like S.
func (g *Graph) RunWithEnergy(x, post *tensor.Dense) (numer *tensor.Dense, energy []float32, err error) {
	out, err := g.step.Run(x, post)
	if err != nil {
		return nil, nil, fmt.Errorf("mstep: %w", err)
	}
	if len(out) > 1 {
		energy = out[1].Data().([]float32)
	}
	return out[0], energy, nil
}

// Close releases the compiled programs.
func (g *Graph) Close() error { return g.step.Close() }

// Stats are the sufficient statistics of an epoch, accumulated in float64
// over its batches (within a batch, the op set's Conv2dFilter decides: see
// the package documentation).
type Stats struct {
	Numerator []float64 // S, K·C·w·w values in θ's layout
	LogCounts []float64 // b_k = log Σ_{n,u} γ[n,k,u]
	LogLik    float64   // Σ_n ℓ[n]
	Images    int       // images added so far

	// PatchEnergy is Σ_n Σ_u ‖x_{n,u}‖² over every patch (AddPatchEnergy),
	// for Variance; left 0 when the variance is not learned.
	PatchEnergy float64

	// KernelEnergy is E_k = Σ_n Σ_u γ[n,k,u]·‖x_{n,u}‖² (K), added by
	// AddKernelEnergy, for KernelVariances; nil unless the layer has
	// graph.Config.KernelVariances.
	KernelEnergy []float64
}

// NewStats returns empty statistics for cfg.
func NewStats(cfg graph.Config) *Stats {
	s := &Stats{
		Numerator: make([]float64, cfg.Kernels*cfg.KernelLen()),
		LogCounts: make([]float64, cfg.Kernels),
	}
	if cfg.KernelVariances {
		s.KernelEnergy = make([]float64, cfg.Kernels)
	}
	for k := range s.LogCounts {
		s.LogCounts[k] = math.Inf(-1)
	}
	return s
}

// Add adds one batch of n images: its numerator S (K·C·w·w values), its log
// counts b (K) and its log-likelihood.
func (s *Stats) Add(numer, logCounts []float32, loglik float64, n int) error {
	if len(numer) != len(s.Numerator) || len(logCounts) != len(s.LogCounts) {
		return fmt.Errorf("mstep: batch statistics of sizes %d and %d, want %d and %d",
			len(numer), len(logCounts), len(s.Numerator), len(s.LogCounts))
	}
	for i, v := range numer {
		s.Numerator[i] += float64(v)
	}
	for k, b := range logCounts {
		s.LogCounts[k] = logAddExp(s.LogCounts[k], float64(b))
	}
	s.LogLik += loglik
	s.Images += n
	return nil
}

func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// NonFiniteError reports a NaN or Inf in the M-step: the reference's
// "numerical precision limit". Epoch is set by the training loop (0 when
// unknown).
type NonFiniteError struct {
	Epoch  int
	Kernel int    // −1 for the shared variance
	What   string // "numerator", "count" or "kernel"
	Value  float64
}

func (e *NonFiniteError) Error() string {
	var where []string
	if e.Epoch > 0 {
		where = append(where, fmt.Sprintf("epoch %d", e.Epoch))
	}
	if e.Kernel >= 0 {
		where = append(where, fmt.Sprintf("kernel %d", e.Kernel))
	}
	what := fmt.Sprintf("%s is %v (numerical precision limit reached)", e.What, e.Value)
	if len(where) == 0 {
		return "mstep: " + what
	}
	return "mstep: " + strings.Join(where, ", ") + ": " + what
}

// MinLogPrior is the floor of the learned log mixing weights: a kernel
// whose expected count underflows keeps a weight of e⁻⁶⁹ ≈ 1e-30 instead
// of −Inf, so that its log joint and features stay finite.
const MinLogPrior = -69

// Update returns the new kernels θ_k = S_k / Ñ_k (K,C,w,w) and log mixing
// weights log π_k = log(N_k / T) (K) from an epoch's statistics, with
// N_k = exp(b_k), T = Σ_k N_k and the reference's pseudo-count
// Ñ_k = (T·N_k + 1)/(T + 1). Whether the E-step uses the weights is the
// caller's choice (the paper keeps them uniform).
func Update(cfg graph.Config, s *Stats) (theta, logPrior *tensor.Dense, err error) {
	d := cfg.KernelLen()
	if len(s.Numerator) != cfg.Kernels*d || len(s.LogCounts) != cfg.Kernels {
		return nil, nil, fmt.Errorf("mstep: statistics do not fit %d kernels of %d values", cfg.Kernels, d)
	}
	var total float64
	counts := make([]float64, cfg.Kernels)
	for k, b := range s.LogCounts {
		counts[k] = math.Exp(b)
		if math.IsNaN(b) || math.IsInf(counts[k], 1) {
			return nil, nil, &NonFiniteError{Kernel: k, What: "count", Value: b}
		}
		total += counts[k]
	}
	th := make([]float32, len(s.Numerator))
	lp := make([]float32, cfg.Kernels)
	for k, nk := range counts {
		pseudo := (total*nk + 1) / (total + 1)
		for i := k * d; i < (k+1)*d; i++ {
			if v := s.Numerator[i]; math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, &NonFiniteError{Kernel: k, What: "numerator", Value: v}
			}
			t := float32(s.Numerator[i] / pseudo)
			if math.IsInf(float64(t), 0) {
				return nil, nil, &NonFiniteError{Kernel: k, What: "kernel", Value: float64(t)}
			}
			th[i] = t
		}
		lp[k] = float32(max(s.LogCounts[k]-math.Log(total), MinLogPrior))
	}
	theta = tensor.New(tensor.WithShape(cfg.KernelShape()...), tensor.WithBacking(th))
	logPrior = tensor.New(tensor.WithShape(cfg.Kernels), tensor.WithBacking(lp))
	return theta, logPrior, nil
}

// AddPatchEnergy adds to s the energy Σ_u ‖x_u‖² of every patch of the
// images x (n·C·H·W values of cfg's images) and returns that of x: what
// Variance needs besides S and the counts. A pixel counts once for each
// window that covers it (padding adds zeros).
func (s *Stats) AddPatchEnergy(cfg graph.Config, x []float32) float64 {
	uh, uw := cfg.Positions()
	cover := func(i, positions int) float64 { // windows over row or column i
		lo, hi := max(i+cfg.Pad-cfg.Width+1, 0), min(i+cfg.Pad, positions-1)
		return float64(max(hi-lo+1, 0))
	}
	var e float64
	plane := cfg.Rows * cfg.Cols
	for i, v := range x {
		p := i % plane
		e += float64(v) * float64(v) * cover(p/cfg.Cols, uh) * cover(p%cfg.Cols, uw)
	}
	s.PatchEnergy += e
	return e
}

// AddKernelEnergy adds one batch's weighted patch energies (K, from
// Graph.RunWithEnergy) to s.
func (s *Stats) AddKernelEnergy(energy []float32) error {
	if s.KernelEnergy == nil || len(energy) != len(s.KernelEnergy) {
		return fmt.Errorf("mstep: %d kernel energies for statistics of %d", len(energy), len(s.KernelEnergy))
	}
	for k, e := range energy {
		s.KernelEnergy[k] += float64(e)
	}
	return nil
}

// MinVariance is the floor of a learned variance, against kernels that
// fit their patches exactly.
const MinVariance = 1e-4

// Variance returns the patch model's shared variance σ² that maximises
// the expected log-likelihood for the new kernels θ (from Update) and an
// epoch's statistics (with AddPatchEnergy):
//
//	σ² = Σ_{n,u,k} γ[n,k,u]·‖x_u − θ_k‖² / (D·Σ_k N_k)
//	   = (Σ_{n,u} ‖x_u‖² − 2 Σ_k θ_k·S_k + Σ_k N_k‖θ_k‖²) / (D·Σ_k N_k)
//
// with D = C·w·w, which holds because the posterior over kernels sums to
// 1 at every position; the paper's model has no such identity, and an
// error is returned for it.
func Variance(cfg graph.Config, s *Stats, theta *tensor.Dense) (float64, error) {
	if cfg.Model != graph.PatchModel {
		return 0, fmt.Errorf("mstep: a learned variance needs the patch model, not the %v model", cfg.Model)
	}
	d := cfg.KernelLen()
	th := theta.Data().([]float32)
	if len(th) != cfg.Kernels*d || len(s.Numerator) != len(th) {
		return 0, fmt.Errorf("mstep: variance of %d kernel values from statistics of %d", len(th), len(s.Numerator))
	}
	sum, patches := s.PatchEnergy, 0.0
	for k, b := range s.LogCounts {
		nk := math.Exp(b)
		patches += nk
		var dot, sq float64
		for i, t := range th[k*d : (k+1)*d] {
			dot += float64(t) * s.Numerator[k*d+i]
			sq += float64(t) * float64(t)
		}
		sum += -2*dot + nk*sq
	}
	v := sum / (float64(d) * patches)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, &NonFiniteError{Kernel: -1, What: "variance", Value: v}
	}
	return max(v, MinVariance), nil
}

// MinKernelCount is the expected count below which a kernel's own
// variance is not estimated: such a kernel takes the pooled variance of
// all kernels instead (a kernel that explains almost no patch would get
// 0/0 or a value set by rounding).
const MinKernelCount = 1e-3

// KernelVariances returns each kernel's variance σ_k² (K) that maximises
// the expected log-likelihood for the new kernels θ (from Update) and an
// epoch's statistics of a layer of graph.Config.KernelVariances:
//
//	σ_k² = Σ_{n,u} γ[n,k,u]·‖x_u − θ_k‖² / (D·N_k)
//	     = (E_k − 2θ_k·S_k + N_k‖θ_k‖²) / (D·N_k)
//
// with D = C·w·w, floored at MinVariance; a kernel of a count below
// MinKernelCount takes the pooled variance Σ_k(…) / (D·Σ_k N_k).
func KernelVariances(cfg graph.Config, s *Stats, theta *tensor.Dense) ([]float64, error) {
	d := cfg.KernelLen()
	th := theta.Data().([]float32)
	if len(th) != cfg.Kernels*d || len(s.Numerator) != len(th) || len(s.KernelEnergy) != cfg.Kernels {
		return nil, fmt.Errorf("mstep: variances of %d kernel values from statistics of %d and %d energies", len(th), len(s.Numerator), len(s.KernelEnergy))
	}
	v := make([]float64, cfg.Kernels)
	var sum, patches float64
	for k, b := range s.LogCounts {
		nk := math.Exp(b)
		var dot, sq float64
		for i, t := range th[k*d : (k+1)*d] {
			dot += float64(t) * s.Numerator[k*d+i]
			sq += float64(t) * float64(t)
		}
		spread := s.KernelEnergy[k] - 2*dot + nk*sq
		sum += spread
		patches += nk
		v[k] = spread / (float64(d) * nk)
	}
	pooled := sum / (float64(d) * patches)
	if math.IsNaN(pooled) || math.IsInf(pooled, 0) {
		return nil, &NonFiniteError{Kernel: -1, What: "variance", Value: pooled}
	}
	for k, b := range s.LogCounts {
		if math.Exp(b) < MinKernelCount {
			v[k] = pooled
		}
		if math.IsNaN(v[k]) || math.IsInf(v[k], 0) {
			return nil, &NonFiniteError{Kernel: k, What: "variance", Value: v[k]}
		}
		v[k] = max(v[k], MinVariance)
	}
	return v, nil
}
