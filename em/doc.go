// Package em trains a CALM layer by batch expectation–maximisation: it runs
// the compiled E-step graph (package estep) and the M-step numerator graph
// (package mstep) over every batch of an epoch, then updates the kernels
// once per epoch, so the log-likelihood never decreases.
//
// It lives beside estep and mstep, not inside either, because the loop
// composes both: neither step should know about the other, about epochs, or
// about where the images come from.
//
//	src, err := dataset.NewImages(pixels, n, 1, 28, 28) // n images of 1×28×28
//	res, err := em.Train(src, em.Settings{Kernels: 64, Width: 20, Pad: 2})
//	feats, err := em.Features(src, res.Layer, graph.ImageWide, nil, 1000) // n×64 features
//
// [Settings] holds every choice, its zero value the paper's: θ ~ N(0,1),
// uniform mixing weights, no repair. Options beyond the paper, all off by
// default: initialisation from the data's patches or by K-means++
// ([InitMethod]), the patch model (Settings.Model, graph.PatchModel),
// learned mixing weights (Settings.Mixing), the re-seeding of collapsed
// kernels ([Repair]), deterministic annealing (Settings.Anneal: a tempered
// E-step whose inverse temperature moves to 1), stepwise EM
// (Settings.Stepwise: θ updated after every batch from running statistics,
// mstep.Running), and learned variances, one shared
// (Settings.LearnVariance) or one per kernel (Settings.KernelVariances). [Whitening] whitens images in front of the first
// layer by a ZCA convolution estimated from their patches.
//
// The loop reports the start of a run (its seeded kernels), every batch and
// every epoch through a [Recorder], so commands can attach progress output
// and checkpoints ([Checkpointer]) without the loop importing them.
// Trained layers are written as NumPy .npy files (float32, shape K,C,w,w)
// beside a model.json ([SaveStack], [LoadStack]); [LoadTheta] reads one
// such file, and a run's state after each epoch is kept with
// [SaveCheckpoint] and [LoadCheckpoint].
package em
