package graph

import (
	"errors"
	"fmt"
	"runtime"

	"calm/gemm"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Ops is the set of graph operations the E-step, M-step and feature graphs
// are built from. Each method adds nodes to the graph of its arguments and
// returns the node of the result; shapes and types are checked when the
// graph is built. All tensors are float32 unless a method says otherwise.
//
// An implementation may fuse or reorder work freely but must compute the
// functions documented here; package graphtest checks one against float64
// loops. Add a new one to OpSets to make it selectable by name.
type Ops interface {
	// Name identifies the op set in flags, logs and metrics ("fast",
	// "gorgonia").
	Name() string

	// Conv2d returns the cross-correlation (no kernel flip, as in PyTorch) of
	// images x (N,C,H,W) with kernels w (K,C,kh,kw) under zero padding pad,
	// plus bias (K) on every position of output channel k:
	//
	//	out[n,k,y,x] = bias[k] + Σ_{c,i,j} w[k,c,i,j] · xpad[n,c,y+i,x+j]
	//
	// The result has shape (N,K,H+2pad−kh+1,W+2pad−kw+1).
	Conv2d(x, w, bias *G.Node, pad int) (*G.Node, error)

	// Conv2dFilter is the convolution whose output is a filter (cuDNN's
	// "backward filter"): for images x (N,C,H,W) and maps f (N,K,Uh,Uw),
	//
	//	out[k,c,i,j] = Σ_n Σ_{y,x} f[n,k,y,x] · xpad[n,c,y+i,x+j]
	//
	// with shape (K,C,H+2pad−Uh+1,W+2pad−Uw+1). With f the posterior over
	// positions it is the M-step's numerator S.
	Conv2dFilter(x, f *G.Node, pad int) (*G.Node, error)

	// LogSumExp returns log Σ exp(x) over the given axes, computed stably
	// (the maximum is subtracted first) with float64 accumulation.
	LogSumExp(x *G.Node, axes ...int) (*G.Node, error)

	// Posterior returns, for a log joint L (N,K,Uh,Uw), the log marginal
	// ℓ (N), the posterior γ (N,K,Uh,Uw) and the log counts b (K):
	//
	//	ℓ[n] = logsumexp_{k,u} L[n,k,u]
	//	γ[n,k,u] = exp(L[n,k,u] − ℓ[n])
	//	b[k] = log Σ_{n,u} γ[n,k,u]
	Posterior(logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error)

	// Pool pools a log joint L (N,K,Uh,Uw) over the cells of p's grid into
	// features (N,K,G,G): see Pooling.
	Pool(logJoint *G.Node, p Pooling) (*G.Node, error)
}

// OpSets returns every op set, the default first: Fast with the fastest
// gemm kernel ("fast"), Fast with each other kernel this CPU runs
// ("fast/avx2", "fast/go", …), Fast unfused ("unfused") and Gorgonia.
// Flags, tests and benchmarks all read this one list: to try an op set of
// your own, add it here.
func OpSets() []Ops {
	ops := []Ops{Fast{}}
	for _, k := range gemm.MicroKernels()[1:] {
		ops = append(ops, Fast{MicroKernel: k})
	}
	return append(ops, Unfused{Ops: Fast{}}, Gorgonia{})
}

// Unfused is an op set that fuses nothing: the methods of Ops alone, so
// that every step writes its output (the log joint, the posterior) whole
// and EM runs the E-step and M-step graphs apart. It is the reference the
// fused op sets are measured against (-ops unfused).
type Unfused struct{ Ops }

// Name implements Ops.
func (Unfused) Name() string { return "unfused" }

// Lookup returns the op set of the given name from OpSets.
func Lookup(name string) (Ops, error) {
	var names []string
	for _, ops := range OpSets() {
		if ops.Name() == name {
			return ops, nil
		}
		names = append(names, ops.Name())
	}
	return nil, fmt.Errorf("graph: unknown op set %q (have %v)", name, names)
}

// Gorgonia is the op set made of Gorgonia's own operations where they are
// right: G.Conv2d (im2col of the whole batch, then one matrix product) for
// both convolutions, and this package's LogSumExp, SubRows, Exp and
// pooling ops for the rest (Gorgonia's LogSumExp is wrong, v0.9.18
// operations.go). It is the baseline every faster op set is tested
// against. Its M-step convolution sums over the whole batch in one float32
// matrix product.
type Gorgonia struct{}

// Name returns "gorgonia".
func (Gorgonia) Name() string { return "gorgonia" }

// Conv2d implements Ops with G.Conv2d and a broadcast addition of the bias.
func (Gorgonia) Conv2d(x, w, bias *G.Node, pad int) (*G.Node, error) {
	if err := checkConv(x, w, bias); err != nil {
		return nil, err
	}
	ws := w.Shape()
	conv, err := G.Conv2d(x, w, ws[2:4].Clone(), []int{pad, pad}, []int{1, 1}, []int{1, 1})
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d: %w", err)
	}
	out, err := G.BroadcastAdd(conv, bias, nil, []byte{0, 2, 3})
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d bias: %w", err)
	}
	return out, nil
}

// Conv2dFilter implements Ops with G.Conv2d over the batch axis: with
// Y = x transposed to (C,N,H,W) and F = f transposed to (K,N,Uh,Uw),
// Conv2d(Y, F) has shape (C,K,kh,kw) and is the result transposed.
func (Gorgonia) Conv2dFilter(x, f *G.Node, pad int) (*G.Node, error) {
	if err := checkFilter(x, f, pad); err != nil {
		return nil, err
	}
	y, err := G.Transpose(x, 1, 0, 2, 3)
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	ft, err := G.Transpose(f, 1, 0, 2, 3)
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	fs := f.Shape()
	st, err := G.Conv2d(y, ft, fs[2:4].Clone(), []int{pad, pad}, []int{1, 1}, []int{1, 1})
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	out, err := G.Transpose(st, 1, 0, 2, 3)
	if err != nil {
		return nil, fmt.Errorf("graph: conv2d filter: %w", err)
	}
	return out, nil
}

// LogSumExp implements Ops with this package's LogSumExp.
func (Gorgonia) LogSumExp(x *G.Node, axes ...int) (*G.Node, error) {
	return LogSumExp(x, axes...)
}

// Posterior implements Ops with LogSumExp, SubRows and Exp.
func (g Gorgonia) Posterior(logJoint *G.Node) (logMarg, post, logCounts *G.Node, err error) {
	return posteriorParts(g, logJoint)
}

// Pool implements Ops with this package's pooling ops.
func (Gorgonia) Pool(logJoint *G.Node, p Pooling) (*G.Node, error) { return Pool(logJoint, p) }

// checkConv checks the shapes and types of a Conv2d before any node is
// built, so that errors name the operands instead of surfacing from deep
// inside Gorgonia or at run time.
func checkConv(x, w, bias *G.Node) error {
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 4 || ws.Dims() != 4 {
		return fmt.Errorf("graph: conv2d wants 4-D images and kernels, got %v and %v", xs, ws)
	}
	if xs[1] != ws[1] {
		return fmt.Errorf("graph: conv2d: images have %d channels, kernels %d", xs[1], ws[1])
	}
	if bs := bias.Shape(); bs.TotalSize() != ws[0] || bs.Dims() != 1 {
		return fmt.Errorf("graph: conv2d: bias has shape %v, want (%d)", bs, ws[0])
	}
	return checkFloat32("conv2d", x, w, bias)
}

func checkFilter(x, f *G.Node, pad int) error {
	xs, fs := x.Shape(), f.Shape()
	if xs.Dims() != 4 || fs.Dims() != 4 {
		return fmt.Errorf("graph: conv2d filter wants 4-D images and maps, got %v and %v", xs, fs)
	}
	if xs[0] != fs[0] {
		return fmt.Errorf("graph: conv2d filter: %d images but %d maps", xs[0], fs[0])
	}
	if fs[2] > xs[2]+2*pad || fs[3] > xs[3]+2*pad {
		return fmt.Errorf("graph: conv2d filter: maps %v larger than padded images %v (pad %d)", fs, xs, pad)
	}
	return checkFloat32("conv2d filter", x, f)
}

// checkFloat32 rejects, when the graph is built, nodes that are not
// float32: the convolutions and the posterior run float32 only.
func checkFloat32(op string, nodes ...*G.Node) error {
	for _, n := range nodes {
		if dt := n.Dtype(); dt != tensor.Float32 {
			return fmt.Errorf("graph: %s: %s is %v, want float32", op, n.Name(), dt)
		}
	}
	return nil
}

// A JointPosterior is an op set that computes the E-step's posterior
// straight from the convolution, in one op that need not write the log
// joint out (an optional capability, used by the E-step when present):
// LogJointPosterior(x, w, bias, pad, m) must give what Conv2d(x, w, bias,
// pad) followed by model m's posterior gives (Posterior for ImageModel,
// PatchPosterior for PatchModel).
// For a model it does not fuse it returns an error wrapping
// ErrNotFused, and the E-step builds the convolution and the posterior
// apart.
type JointPosterior interface {
	LogJointPosterior(x, w, bias *G.Node, pad int, m Model) (logMarg, post, logCounts *G.Node, err error)
}

// ErrNotFused is wrapped by the error of a JointPosterior asked to fuse a
// model it does not.
var ErrNotFused = errors.New("model not fused")

// A MemoryEstimator is an op set that can say how many bytes its ops hold
// (or allocate per run) for a batch of cfg.Batch images, beyond the
// outputs of the steps: an optional capability, used to refuse a batch
// that cannot fit before it runs.
type MemoryEstimator interface {
	BatchBytes(cfg Config) int64
}

// BatchBytes implements MemoryEstimator: G.Conv2d builds the whole batch's
// patch matrix (n·Uh·Uw × C·w·w floats) for each convolution and allocates
// its outputs, transposes and broadcasts afresh on every run, so a run
// holds about two patch matrices and eight maps, and the garbage of the
// previous run until it is collected: twice that.
func (Gorgonia) BatchBytes(cfg Config) int64 {
	n := int64(cfg.Batch)
	uh, uw := cfg.Positions()
	patches := n * int64(uh*uw) * int64(cfg.KernelLen()) * 4
	maps := n * int64(cfg.MapLen()) * 4
	return 2 * (2*patches + 8*maps)
}

// BatchBytes implements MemoryEstimator: per worker a padded image, one
// image's map and a posterior panel; the M-step's float64 shard sums.
func (Fast) BatchBytes(cfg Config) int64 {
	uh, uw := cfg.Positions()
	perWorker := int64((cfg.Rows+2*cfg.Pad)*(cfg.Cols+2*cfg.Pad)*cfg.Channels+2*cfg.MapLen()+uh*uw*64) * 4
	shards := int64(filterShards) * int64(cfg.Kernels*cfg.KernelLen()) * 8
	return int64(runtime.GOMAXPROCS(0))*perWorker + shards
}
