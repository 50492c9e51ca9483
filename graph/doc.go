// Package graph holds what the E-step and M-step graphs share: the layer
// configuration, the op set the graphs are built from, and the compiled
// program that runs a graph once per batch on a Gorgonia TapeMachine.
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
// The graphs never call Gorgonia's convolution or reductions directly; they
// go through an [Ops] value, so a researcher can swap in another convolution
// or another pooling with one line (or the -conv flag of the commands):
//
//	g, err := estep.New(cfg, graph.Stock{}) // Gorgonia's own Conv2d
//	g, err := estep.New(cfg, graph.Fast{})  // cache-blocked, multi-core ops
//
// Every Ops implementation must compute the same functions; the tests in this
// package check each one against direct float64 loops.
//
// # Programs
//
// [Program] compiles a graph once and runs it for every batch
// (Let → Reset → RunAll). Inputs are bound without copying and are never
// modified.
package graph
