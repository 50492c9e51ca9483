package graph

import (
	"calm/internal/enum"
)

// A Model is what EM assumes about the patches of an image: it decides how
// the E-step normalises the log joint L (N,K,Uh,Uw) into the posterior and
// the log marginal. Both models share the log joint (the convolution with
// bias −½‖θ_k‖² + log π_k), the M-step (the posterior used as a filter,
// θ_k = S_k / Ñ_k) and the features (the log joint, pooled).
type Model int

const (
	// ImageModel is the paper's: each image holds one patch, drawn from
	// one of K kernels at one of the Uh·Uw positions, the rest N(0,1)
	// noise. The posterior is over (kernel, position) jointly:
	//
	//	ℓ[n] = logsumexp_{k,u} L[n,k,u],  γ[n,k,u] = exp(L[n,k,u] − ℓ[n])
	ImageModel Model = iota
	// PatchModel makes every patch of every image a draw from the mixture
	// of K Gaussians N(θ_k, σ²I), independently (a Gaussian mixture over
	// patches, as convolutional k-means assumes, with soft assignments;
	// σ² = 1 unless learned, when L is taken at inverse temperature 1/σ²).
	// The posterior is over kernels at each position:
	//
	//	ℓ[n] = Σ_u logsumexp_k L[n,k,u],  γ[n,k,u] = exp(L[n,k,u] − logsumexp_j L[n,j,u])
	//
	// ℓ leaves out −½‖x_u‖² and the normalising constants, which do not
	// depend on θ, so EM's LL still never decreases.
	PatchModel
)

var modelNames = enum.Names[Model]{Package: "graph", What: "model", List: []string{"image", "patch"}}

// String returns the model's name as -model and every file spell it.
func (m Model) String() string { return modelNames.String(m) }

// ParseModel returns the model of the given name: image or patch.
func ParseModel(name string) (Model, error) { return modelNames.Parse(name) }

// MarshalText writes the model's name.
func (m Model) MarshalText() ([]byte, error) { return modelNames.Marshal(m) }

// UnmarshalText reads a model's name.
func (m *Model) UnmarshalText(b []byte) error { return modelNames.Unmarshal(b, m) }
