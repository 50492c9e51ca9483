package em

import (
	"context"
	"fmt"
	"math"

	"calm/graph"
	"calm/internal/enum"

	"gorgonia.org/tensor"
)

// Settings configure Train. The zero value of each field means its
// default, which is the paper's MNIST layer trained the paper's way;
// Settings.Normalize fills the defaults in and checks every value, the one
// place that does.
type Settings struct {
	Kernels int // K; default 64
	Width   int // kernel width w; default 20
	Pad     int // zero padding p; 0 is a padding, not a default
	Batch   int // images per batch: a memory bound (EM's sums change with it by float rounding only); default 1000

	MaxEpochs int     // default 15; NoEpochs for none (the kernels stay as initialised)
	Tol       float64 // stop when the relative LL gain falls below Tol; 0 = never

	// Init, when set, is the initial θ (K,C,w,w); otherwise InitFrom
	// draws it, from Seed.
	Init       *tensor.Dense
	InitFrom   InitMethod // default InitNormal, the paper's θ ~ N(0,1)
	Seed       uint64
	InitSample int // patches sampled for InitPatches and InitKMeansPP; default 10 000

	// Model is what EM assumes about the patches (graph.Model); the zero
	// value is the paper's, graph.ImageModel.
	Model graph.Model

	// Mixing learns the mixing weights π_k = N_k / Σ N, starting from 1/K
	// (log π enters the E-step's bias, so the LL includes it); off, they
	// stay uniform and out of the LL, as in the paper.
	Mixing bool

	// Repair re-seeds collapsed kernels after each epoch but the last; the
	// zero value is off, as in the paper.
	Repair Repair

	// LearnVariance learns σ², the variance the patch model's Gaussians
	// N(θ_k, σ²I) share (the paper fixes it to 1): the E-step's log joint
	// is taken at inverse temperature 1/σ² (estep.LogJoint) and the M-step
	// sets σ² to the posterior-weighted squared distance of the patches
	// from their kernels, per dimension (mstep.Variance). The LL is then
	// the model's with σ², and still never decreases. The features use the
	// learned σ² too (Layer.Variance).
	LearnVariance bool

	// KernelVariances learns a variance σ_k² for each kernel, N(θ_k, σ_k²I)
	// (graph.Config.KernelVariances), from 1, with the patch model: the
	// log joint is then the whole Gaussian log density of each patch,
	// −‖x_u − θ_k‖²/(2σ_k²) − (D/2)·log σ_k² + log π_k, the term in ‖x_u‖²
	// deciding the posterior too, and the M-step sets σ_k² to the
	// posterior-weighted squared distance of kernel k's patches from θ_k,
	// per dimension (mstep.KernelVariances). The LL is the model's (up to
	// −(D/2)·log 2π a patch) and never decreases; the features use the
	// variances too (Layer.Variances).
	KernelVariances bool

	// Anneal, when positive, is the inverse temperature β of the first
	// epoch's E-step (deterministic annealing, Ueda & Nakano 1998): the
	// Gaussian part of the log joint is scaled by β (estep.LogJoint), so
	// with uniform mixing weights the posterior is ∝ exp(β·L), softer than
	// EM's for β < 1 and harder for β > 1; β moves geometrically to 1 at
	// the last epoch, β_e = Anneal^((E−e)/(E−1)) for E = MaxEpochs > 1 (one
	// epoch runs at Anneal). 0 is EM, the paper's. An epoch at β ≠ 1
	// reports the LL of the tempered joint, which is not the model's and
	// may fall.
	Anneal float64

	// Stepwise, when positive, is the exponent α of stepwise (online) EM:
	// θ is updated after every batch from running statistics with step
	// size (t+1)^−α (mstep.Running), instead of once an epoch. Stochastic
	// approximation converges for 1/2 < α ≤ 1; 0 is batch EM, the paper's.
	// An epoch's LL is then the sum of its batches' LLs under the θ each
	// batch saw, and may fall.
	Stepwise float64

	Ops      graph.Ops // default graph.OpSets()[0]
	Recorder Recorder  // optional

	// Context, when cancelled, stops training at the next batch boundary
	// with an error wrapping its cause; the epoch under way is dropped.
	Context context.Context

	// Resume continues a run from a checkpoint of it: θ, the mixing weights
	// and the history after Resume.Epoch epochs. Init is then ignored. The
	// result is the same, bit for bit, as that of the uninterrupted run.
	Resume *Checkpoint
}

// NoEpochs, as Settings.MaxEpochs, trains no epoch: the layer keeps its
// initial kernels (from the data with InitPatches or InitKMeansPP, a
// dictionary of patches).
const NoEpochs = -1

// Defaults of Settings.
const (
	DefaultKernels    = 64
	DefaultWidth      = 20
	DefaultBatch      = 1000
	DefaultMaxEpochs  = 15
	DefaultInitSample = 10000
)

// Repair says which kernels count as collapsed after an epoch, to be
// re-seeded from the patch the model explains worst: one whose expected
// count N_k (images explained, out of all) falls below MinCount, or whose
// cosine similarity with a kernel of lower index is at least MaxCosine. A
// zero field turns its test off.
type Repair struct {
	MinCount  float64 `json:"min_count"`
	MaxCosine float64 `json:"max_cosine"`
}

// On reports whether r re-seeds anything.
func (r Repair) On() bool { return r.MinCount > 0 || r.MaxCosine > 0 }

// An InitMethod draws the initial kernels.
type InitMethod int

const (
	// InitNormal draws θ ~ N(0,1) elementwise, as the paper and the
	// reference do.
	InitNormal InitMethod = iota
	// InitPatches takes K distinct patches drawn uniformly from a sample of
	// the training images' patches.
	InitPatches
	// InitKMeansPP seeds K-means++ over a sample of patches: each next
	// kernel is a patch drawn with probability proportional to its squared
	// distance from the nearest kernel so far.
	InitKMeansPP
)

var initNames = enum.Names[InitMethod]{Package: "em", What: "initialisation", List: []string{"normal", "patches", "kmeans++"}}

// String returns the method's name as -init-from and every file spell it.
func (m InitMethod) String() string { return initNames.String(m) }

// ParseInitMethod returns the method of the given name: normal, patches or
// kmeans++.
func ParseInitMethod(name string) (InitMethod, error) { return initNames.Parse(name) }

// MarshalText writes the method's name.
func (m InitMethod) MarshalText() ([]byte, error) { return initNames.Marshal(m) }

// UnmarshalText reads a method's name.
func (m *InitMethod) UnmarshalText(b []byte) error { return initNames.Unmarshal(b, m) }

// defaultOps returns ops, or the default op set (the first of
// graph.OpSets) for nil.
func defaultOps(ops graph.Ops) graph.Ops {
	if ops == nil {
		return graph.OpSets()[0]
	}
	return ops
}

// Normalize returns s with every default filled in, and the layer
// configuration it gives for n images of shape (c,h,w), after checking
// every value: an impossible layer wraps graph.ErrConfig.
func (s Settings) Normalize(n, c, h, w int) (Settings, graph.Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.Kernels, DefaultKernels)
	def(&s.Width, DefaultWidth)
	def(&s.Batch, DefaultBatch)
	def(&s.MaxEpochs, DefaultMaxEpochs)
	def(&s.InitSample, DefaultInitSample)
	s.Ops = defaultOps(s.Ops)
	if s.Context == nil {
		s.Context = context.Background()
	}
	if s.Init != nil {
		if ts := s.Init.Shape(); ts.Dims() == 4 {
			s.Kernels, s.Width = ts[0], ts[2]
		}
	}
	cfg := graph.Config{Kernels: s.Kernels, Width: s.Width, Pad: s.Pad, Channels: c, Rows: h, Cols: w, Batch: min(s.Batch, max(n, 1)), Model: s.Model, KernelVariances: s.KernelVariances}
	bad := func(format string, args ...any) (Settings, graph.Config, error) {
		return s, cfg, fmt.Errorf("em: "+format, args...)
	}
	switch {
	case n < 1:
		return bad("no images to train on")
	case s.Kernels < 0 || s.Width < 0 || s.Batch < 0:
		return bad("%d kernels of width %d, batch %d: want positive values", s.Kernels, s.Width, s.Batch)
	case s.MaxEpochs < 0 && s.MaxEpochs != NoEpochs:
		return bad("max epochs %d, want at least 1 (or NoEpochs)", s.MaxEpochs)
	case s.Tol < 0 || math.IsNaN(s.Tol):
		return bad("tolerance %v, want 0 (off) or more", s.Tol)
	case s.InitFrom < InitNormal || s.InitFrom > InitKMeansPP:
		return bad("unknown initialisation %v", s.InitFrom)
	case s.InitSample < 0:
		return bad("init sample of %d patches, want a positive count", s.InitSample)
	case (s.InitFrom == InitPatches || s.InitFrom == InitKMeansPP) && s.Init == nil && s.InitSample < s.Kernels:
		return bad("init sample of %d patches for %d kernels, want at least as many", s.InitSample, s.Kernels)
	case s.Anneal < 0 || math.IsNaN(s.Anneal) || math.IsInf(s.Anneal, 0):
		return bad("annealing from an inverse temperature of %v: want 0 (off) or a positive β", s.Anneal)
	case (s.LearnVariance || s.KernelVariances) && (s.Model != graph.PatchModel || s.Stepwise > 0 || s.Anneal > 0):
		return bad("a learned variance needs the patch model, batch EM and no annealing (the variance sets the temperature)")
	case s.LearnVariance && s.KernelVariances:
		return bad("a variance shared by the kernels or one per kernel: not both")
	case s.Stepwise < 0 || s.Stepwise > 1 || math.IsNaN(s.Stepwise):
		return bad("stepwise EM with exponent %v: want 0 (batch EM) or α in (0, 1]", s.Stepwise)
	case s.Repair.MinCount < 0 || s.Repair.MaxCosine < 0 || s.Repair.MaxCosine > 1 || math.IsNaN(s.Repair.MinCount+s.Repair.MaxCosine):
		return bad("repair below a count of %v or above a cosine of %v: want a count ≥ 0 and a cosine in [0, 1]", s.Repair.MinCount, s.Repair.MaxCosine)
	}
	if err := cfg.Validate(); err != nil {
		return s, cfg, fmt.Errorf("em: %w", err)
	}
	if s.Init != nil {
		if want := cfg.KernelShape(); !s.Init.Shape().Eq(want) || s.Init.Dtype() != tensor.Float32 {
			return bad("initial θ is %v %v, want float32 %v", s.Init.Dtype(), s.Init.Shape(), want)
		}
		if i := nonFinite(s.Init.Data().([]float32)); i >= 0 {
			return bad("θ holds %v in kernel %d: give finite kernels", s.Init.Data().([]float32)[i], i/cfg.KernelLen())
		}
	}
	if r := s.Resume; r != nil {
		if err := r.check(cfg, n, s.epochs(), s.Stepwise > 0, s.LearnVariance); err != nil {
			return s, cfg, err
		}
	}
	return s, cfg, nil
}

// BatchBytes estimates the memory Train holds for its batches of images
// under cfg with op set ops: a batch's images, its posterior and, unless
// the op set fuses the two (graph.JointPosterior), its log joint (and
// those of a shorter last batch, which gets graphs of its own), and what
// the op set says its ops hold (graph.MemoryEstimator).
func BatchBytes(cfg graph.Config, ops graph.Ops, images int) int64 {
	maps := 2 * int64(cfg.MapLen()) * 4
	if _, fused := ops.(graph.JointPosterior); fused {
		maps /= 2
	}
	bytes := int64(cfg.Batch) * (int64(cfg.ImageLen())*4 + maps)
	if tail := images % cfg.Batch; tail != 0 && images > cfg.Batch {
		bytes += int64(tail) * maps
	}
	if m, ok := ops.(graph.MemoryEstimator); ok {
		bytes += m.BatchBytes(cfg)
	}
	return bytes
}

// epochs is the number of epochs s trains at most (0 for NoEpochs).
func (s Settings) epochs() int { return max(s.MaxEpochs, 0) }

// beta returns the inverse temperature of the E-step in the given epoch
// (from 1): see Settings.Anneal.
func (s Settings) beta(epoch int) float32 {
	switch e := s.epochs(); {
	case s.Anneal == 0:
		return 1
	case e <= 1:
		return float32(s.Anneal)
	default:
		return float32(math.Pow(s.Anneal, float64(e-epoch)/float64(e-1)))
	}
}
