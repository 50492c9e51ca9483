// Package mstep builds and runs the M-step of a CALM layer: the compiled
// Gorgonia graph of the numerator, the accumulation of the sufficient
// statistics over an epoch, and the update of the kernels.
//
// For a batch X (N,C,H,W) and its posterior γ (N,K,Uh,Uw) the graph yields
//
//	S[k] = Σ_n Σ_u γ[n,k,u] · patch_u(X_n)      (K,C,w,w)
//
// a single convolution with the posterior map as the filter
// (graph.Ops.Conv2dFilter). [Stats] adds up S, the log counts b and the
// log-likelihood over every batch of an epoch in float64, and [Update] turns
// them into the new kernels with the reference's pseudo-count, and the new
// mixing weights:
//
//	N_k = exp(b_k),  T = Σ_k N_k,  Ñ_k = (T·N_k + 1)/(T + 1),  θ_k ← S_k / Ñ_k,  π_k ← N_k / T
//
// A layer whose kernels each have their own variance
// (graph.Config.KernelVariances) also sums each kernel's weighted patch
// energy E_k = Σ_{n,u} γ[n,k,u]·‖x_{n,u}‖² in the graph ([Graph.RunWithEnergy]),
// and [KernelVariances] turns E, S and the counts into σ_k²; [Variance]
// gives the one variance the kernels share.
//
// Within a batch, the precision of S is the op set's: graph.Fast sums in
// float32 over one image's positions and over groups of 8 images, in
// float64 beyond; graph.Gorgonia sums the whole batch in one float32
// matrix product.
//
// This is exact batch EM: the log-likelihood never decreases from one epoch
// to the next, up to rounding. A NaN or Inf in S or θ is reported as a
// *NonFiniteError naming the kernel.
package mstep
