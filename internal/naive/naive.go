// Package naive computes the CALM maths with direct float64 loops over
// (n, k, u), as the independent reference that the tests of the graph, estep
// and mstep packages compare against. It is written for clarity, not speed,
// and shares no code with the packages it checks.
package naive

import "math"

// Layer is the shape of a problem: N images (C,H,W), K kernels (C,S,S),
// padding P.
type Layer struct{ N, C, H, W, K, S, P int }

// Positions returns Uh, Uw.
func (l Layer) Positions() (int, int) { return l.H + 2*l.P - l.S + 1, l.W + 2*l.P - l.S + 1 }

// Pixel returns x[n,c,y,x] of the zero-padded image (y, x in padded
// coordinates).
func (l Layer) Pixel(x []float32, n, c, y, xx int) float64 {
	y -= l.P
	xx -= l.P
	if y < 0 || y >= l.H || xx < 0 || xx >= l.W {
		return 0
	}
	return float64(x[((n*l.C+c)*l.H+y)*l.W+xx])
}

// LogJoint returns L[n,k,u] = Σ θ_k·patch_u(x_n) − ½‖θ_k‖², (N,K,Uh,Uw).
func (l Layer) LogJoint(x, theta []float32) []float64 {
	uh, uw := l.Positions()
	out := make([]float64, l.N*l.K*uh*uw)
	for n := 0; n < l.N; n++ {
		for k := 0; k < l.K; k++ {
			var sq float64
			for c := 0; c < l.C; c++ {
				for i := 0; i < l.S; i++ {
					for j := 0; j < l.S; j++ {
						t := float64(theta[((k*l.C+c)*l.S+i)*l.S+j])
						sq += t * t
					}
				}
			}
			for y := 0; y < uh; y++ {
				for xx := 0; xx < uw; xx++ {
					s := -sq / 2
					for c := 0; c < l.C; c++ {
						for i := 0; i < l.S; i++ {
							for j := 0; j < l.S; j++ {
								s += float64(theta[((k*l.C+c)*l.S+i)*l.S+j]) * l.Pixel(x, n, c, y+i, xx+j)
							}
						}
					}
					out[((n*l.K+k)*uh+y)*uw+xx] = s
				}
			}
		}
	}
	return out
}

// Conv2d returns the cross-correlation of x with theta plus bias,
// (N,K,Uh,Uw).
func (l Layer) Conv2d(x, theta, bias []float32) []float64 {
	uh, uw := l.Positions()
	out := make([]float64, l.N*l.K*uh*uw)
	for n := 0; n < l.N; n++ {
		for k := 0; k < l.K; k++ {
			for y := 0; y < uh; y++ {
				for xx := 0; xx < uw; xx++ {
					s := float64(bias[k])
					for c := 0; c < l.C; c++ {
						for i := 0; i < l.S; i++ {
							for j := 0; j < l.S; j++ {
								s += float64(theta[((k*l.C+c)*l.S+i)*l.S+j]) * l.Pixel(x, n, c, y+i, xx+j)
							}
						}
					}
					out[((n*l.K+k)*uh+y)*uw+xx] = s
				}
			}
		}
	}
	return out
}

// Filter returns S[k,c,i,j] = Σ_n Σ_u f[n,k,u] · xpad[n,c,u+(i,j)], (K,C,S,S),
// for maps f (N,K,Uh,Uw).
func (l Layer) Filter(x, f []float32) []float64 {
	uh, uw := l.Positions()
	out := make([]float64, l.K*l.C*l.S*l.S)
	for k := 0; k < l.K; k++ {
		for c := 0; c < l.C; c++ {
			for i := 0; i < l.S; i++ {
				for j := 0; j < l.S; j++ {
					var s float64
					for n := 0; n < l.N; n++ {
						for y := 0; y < uh; y++ {
							for xx := 0; xx < uw; xx++ {
								s += float64(f[((n*l.K+k)*uh+y)*uw+xx]) * l.Pixel(x, n, c, y+i, xx+j)
							}
						}
					}
					out[((k*l.C+c)*l.S+i)*l.S+j] = s
				}
			}
		}
	}
	return out
}

// LogSumExp returns log Σ exp(v) computed stably.
func LogSumExp(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	if math.IsInf(m, 0) {
		return m
	}
	var s float64
	for _, x := range v {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}

// EStep is the E-step of one batch in float64.
type EStep struct {
	LogJoint     []float64 // (N,K,Uh,Uw)
	LogMarginal  []float64 // (N)
	LogPosterior []float64 // (N,K,Uh,Uw)
	LogCounts    []float64 // (K)
	Features     []float64 // (N,K): logsumexp_u L
}

// E runs the E-step with direct loops.
func (l Layer) E(x, theta []float32) EStep {
	uh, uw := l.Positions()
	u := uh * uw
	e := EStep{LogJoint: l.LogJoint(x, theta)}
	e.LogMarginal = make([]float64, l.N)
	e.LogPosterior = make([]float64, len(e.LogJoint))
	e.Features = make([]float64, l.N*l.K)
	for n := 0; n < l.N; n++ {
		e.LogMarginal[n] = LogSumExp(e.LogJoint[n*l.K*u : (n+1)*l.K*u])
		for i := n * l.K * u; i < (n+1)*l.K*u; i++ {
			e.LogPosterior[i] = e.LogJoint[i] - e.LogMarginal[n]
		}
		for k := 0; k < l.K; k++ {
			e.Features[n*l.K+k] = LogSumExp(e.LogJoint[(n*l.K+k)*u : (n*l.K+k+1)*u])
		}
	}
	e.LogCounts = make([]float64, l.K)
	for k := 0; k < l.K; k++ {
		var all []float64
		for n := 0; n < l.N; n++ {
			all = append(all, e.LogPosterior[(n*l.K+k)*u:(n*l.K+k+1)*u]...)
		}
		e.LogCounts[k] = LogSumExp(all)
	}
	return e
}
