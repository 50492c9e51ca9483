// Package estep builds and runs the E-step of a CALM layer as a compiled
// Gorgonia graph.
//
// Given images X (N,C,H,W) and kernels θ (K,C,w,w), the E-step graph yields
//
//	L[n,k,u]    = <θ_k, patch_u(X_n)> − ½‖θ_k‖²     log joint (N,K,Uh,Uw): a Conv2d with bias
//	ℓ[n]        = logsumexp_{k,u} L[n,k,u]          log marginal of image n (N)
//	logγ[n,k,u] = L[n,k,u] − ℓ[n]                   log posterior of kernel and position
//	γ           = exp(logγ)                         posterior, the M-step's filter
//	b[k]        = logsumexp_{n,u} logγ[n,k,u]       log expected count of kernel k (K)
//
// and the batch's log-likelihood Σ_n ℓ[n], summed in float64. Features pools
// L over positions instead: f[n,k] = logsumexp_u L[n,k,u].
//
// A graph is built once per layer configuration and op set, compiled once into
// a TapeMachine, and run for every batch; a batch smaller than the configured
// one (the tail of an epoch) gets its own compiled graph, built on first use.
// Inputs are never modified. The tensors of a Result belong to the graph and
// are overwritten by its next run.
package estep
