// Package estep builds and runs the E-step of a CALM layer as a compiled
// Gorgonia graph.
//
// Given images X (N,C,H,W), kernels θ (K,C,w,w) and log mixing weights
// log π (K; zero for the paper's uniform weights), the E-step graph yields
//
//	L[n,k,u] = <θ_k, patch_u(X_n)> − ½‖θ_k‖² + log π_k   log joint (N,K,Uh,Uw): a Conv2d with bias
//	ℓ[n]     = logsumexp_{k,u} L[n,k,u]                log marginal of image n (N)
//	γ[n,k,u] = exp(L[n,k,u] − ℓ[n])                    posterior of kernel and position, the M-step's filter
//	b[k]     = log Σ_{n,u} γ[n,k,u]                    log expected count of kernel k (K)
//
// and the batch's log-likelihood Σ_n ℓ[n], summed in float64. That is the
// paper's model (graph.ImageModel); under graph.PatchModel, the posterior
// is over kernels at each position instead,
//
//	ℓ[n] = Σ_u logsumexp_k L[n,k,u],  γ[n,k,u] = exp(L[n,k,u] − logsumexp_j L[n,j,u])
//
// (Config.Model chooses; the log joint and the features are the same).
// [Features]
// pools L over the cells of a grid of positions instead (graph.Pooling);
// the paper's image-wide features are f[n,k] = logsumexp_u L[n,k,u].
//
// Both are graph.Steps: built once per layer configuration and op set,
// compiled once, run for every batch. Inputs are never modified. The
// tensors of a Result belong to the Graph and are overwritten by its next
// run; Features.RunInto writes into the caller's slice.
package estep
