// Package graph holds what the E-step, M-step and feature graphs share: the
// layer configuration, the op sets the graphs are built from, the ops of
// this project, and Step, a graph compiled once and run for every batch.
//
// # Layer configuration
//
// A CALM layer convolves images X (N,C,H,W) with K square kernels θ
// (K,C,w,w) under zero padding p. The kernel's positions form a grid of
// Uh × Uw = (H+2p−w+1) × (W+2p−w+1). [Config.Validate] rejects impossible
// layers before any graph is built.
//
// # Op sets
//
// The graphs never call Gorgonia's convolutions or reductions directly;
// they go through an [Ops] value: the two convolutions, the log-sum-exp,
// the posterior and the pooling of features. [OpSets] lists them all, the
// default first, and [Lookup] finds one by name (the commands' -ops flag):
//
//	Fast{}                 the default: the gemm micro-kernel reads the patches from the image
//	Fast{MicroKernel: k}   the same with another gemm micro-kernel ("fast/avx2", "fast/go")
//	Gorgonia{}             Gorgonia's own Conv2d, the baseline
//
// Swap one in by passing it to estep.New, mstep.New or em.Settings.Ops; to
// make a new one selectable by name, add it to OpSets. Package graphtest
// holds every op set to the same float64 loops.
//
// # Models
//
// [Model] says what EM assumes about an image's patches: the paper's
// [ImageModel] (one patch per image; the posterior over kernel and position
// jointly) or [PatchModel] (every patch a draw of the mixture; the
// posterior over kernels at each position, [PatchPosterior]). Config.Model
// carries it into the E-step graph. Config.KernelVariances gives the patch
// model's kernels a variance each: the images then carry their energy as
// one more channel ([EnergyChannel], [PrecisionKernels], [PrecisionBias])
// and the M-step sums each kernel's patch energy ([KernelEnergy]).
//
// # Ops of this package
//
// LogSumExp, SubRows, Exp, KernelBias, Scale, the variance ops and the
// pooling ops are custom
// Gorgonia ops: Gorgonia's LogSumExp is wrong and its elementwise ops
// write into their inputs. KernelPosterior, LocalPool and ChannelAffine,
// combined by a Transform, turn one layer's log joint into the next
// layer's input. Every op checks its types when the graph is built, never
// modifies its inputs, and reuses its output buffer from one run to the
// next.
//
// # Steps
//
// [Step] owns "a graph built for n images, compiled once, run per batch":
// its inputs' shapes follow from the Config, a batch smaller than the
// configured one gets its own compiled graph, and results come back as
// tensors valid until the next run, or copied into the caller's slices
// (RunInto). A Step is not safe for concurrent use.
package graph
