// Package naive computes the CALM maths with direct float64 loops over
// (n, k, u), as the independent reference that the tests of the graph, estep
// and mstep packages compare against. It is written for clarity, not speed,
// and shares no code with the packages it checks.
package naive

import "math"

// Layer is the shape of a problem: N images of C channels, Rows × Cols
// pixels; K kernels of C × Width × Width; padding Pad.
type Layer struct{ N, C, Rows, Cols, K, Width, Pad int }

// Positions returns Uh, Uw.
func (l Layer) Positions() (int, int) {
	return l.Rows + 2*l.Pad - l.Width + 1, l.Cols + 2*l.Pad - l.Width + 1
}

// Pixel returns x[n,c,y,x] of the zero-padded image (y, x in padded
// coordinates).
func (l Layer) Pixel(x []float32, n, c, y, xx int) float64 {
	y -= l.Pad
	xx -= l.Pad
	if y < 0 || y >= l.Rows || xx < 0 || xx >= l.Cols {
		return 0
	}
	return float64(x[((n*l.C+c)*l.Rows+y)*l.Cols+xx])
}

// LogJoint returns L[n,k,u] = Σ θ_k·patch_u(x_n) − ½‖θ_k‖² + logPrior[k],
// (N,K,Uh,Uw); a nil logPrior means zeros (uniform weights).
func (l Layer) LogJoint(x, theta []float32, logPrior []float64) []float64 {
	bias := make([]float64, l.K)
	for k := range bias {
		var sq float64
		for _, v := range theta[k*l.C*l.Width*l.Width : (k+1)*l.C*l.Width*l.Width] {
			sq += float64(v) * float64(v)
		}
		bias[k] = -sq / 2
		if logPrior != nil {
			bias[k] += logPrior[k]
		}
	}
	return l.conv(x, theta, bias)
}

// Conv2d returns the cross-correlation of x with theta plus bias,
// (N,K,Uh,Uw).
func (l Layer) Conv2d(x, theta, bias []float32) []float64 {
	b := make([]float64, len(bias))
	for k, v := range bias {
		b[k] = float64(v)
	}
	return l.conv(x, theta, b)
}

func (l Layer) conv(x, theta []float32, bias []float64) []float64 {
	uh, uw := l.Positions()
	out := make([]float64, l.N*l.K*uh*uw)
	for n := 0; n < l.N; n++ {
		for k := 0; k < l.K; k++ {
			for y := 0; y < uh; y++ {
				for xx := 0; xx < uw; xx++ {
					s := bias[k]
					for c := 0; c < l.C; c++ {
						for i := 0; i < l.Width; i++ {
							for j := 0; j < l.Width; j++ {
								s += float64(theta[((k*l.C+c)*l.Width+i)*l.Width+j]) * l.Pixel(x, n, c, y+i, xx+j)
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
	out := make([]float64, l.K*l.C*l.Width*l.Width)
	for k := 0; k < l.K; k++ {
		for c := 0; c < l.C; c++ {
			for i := 0; i < l.Width; i++ {
				for j := 0; j < l.Width; j++ {
					var s float64
					for n := 0; n < l.N; n++ {
						for y := 0; y < uh; y++ {
							for xx := 0; xx < uw; xx++ {
								s += float64(f[((n*l.K+k)*uh+y)*uw+xx]) * l.Pixel(x, n, c, y+i, xx+j)
							}
						}
					}
					out[((k*l.C+c)*l.Width+i)*l.Width+j] = s
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

// E runs the E-step with direct loops; a nil logPrior means uniform
// weights.
func (l Layer) E(x, theta []float32, logPrior []float64) EStep {
	return l.EFrom(l.LogJoint(x, theta, logPrior))
}

// EFrom runs the E-step of the paper's model from a log joint (N,K,Uh,Uw).
func (l Layer) EFrom(logJoint []float64) EStep {
	uh, uw := l.Positions()
	u := uh * uw
	e := EStep{LogJoint: logJoint}
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
	e.LogCounts = l.logCounts(e.LogPosterior)
	return e
}

// logCounts returns, for log posteriors (N,K,U), log Σ_{n,u} of each
// kernel's posterior.
func (l Layer) logCounts(logPost []float64) []float64 {
	uh, uw := l.Positions()
	u := uh * uw
	out := make([]float64, l.K)
	for k := 0; k < l.K; k++ {
		var all []float64
		for n := 0; n < l.N; n++ {
			all = append(all, logPost[(n*l.K+k)*u:(n*l.K+k+1)*u]...)
		}
		out[k] = LogSumExp(all)
	}
	return out
}

// EPatch runs the E-step of the patch model (graph.PatchModel) with
// direct loops: at each position the posterior over kernels, the log
// marginal the sum over positions of logsumexp_k L, and the log counts;
// Features as in E.
func (l Layer) EPatch(x, theta []float32, logPrior []float64) EStep {
	return l.EPatchFrom(l.LogJoint(x, theta, logPrior))
}

// EPatchFrom runs the E-step of the patch model from a log joint
// (N,K,Uh,Uw).
func (l Layer) EPatchFrom(logJoint []float64) EStep {
	uh, uw := l.Positions()
	u := uh * uw
	e := l.EFrom(logJoint)
	col := make([]float64, l.K)
	for n := 0; n < l.N; n++ {
		e.LogMarginal[n] = 0
		for p := 0; p < u; p++ {
			for k := range col {
				col[k] = e.LogJoint[(n*l.K+k)*u+p]
			}
			lse := LogSumExp(col)
			e.LogMarginal[n] += lse
			for k := range col {
				e.LogPosterior[(n*l.K+k)*u+p] = col[k] - lse
			}
		}
	}
	e.LogCounts = l.logCounts(e.LogPosterior)
	return e
}

// Pool reduces each of the maps Uh×Uw of m over the cells of a G×G grid
// (position u of an axis of U positions in cell ⌊u·G/U⌋) by reduce:
// "lse" (log-sum-exp), "max" or "mean". The result holds G·G values per
// map.
func Pool(m []float64, uh, uw, g int, reduce string) []float64 {
	maps := len(m) / (uh * uw)
	out := make([]float64, maps*g*g)
	for i := 0; i < maps; i++ {
		for c := 0; c < g*g; c++ {
			var vals []float64
			for y := 0; y < uh; y++ {
				for x := 0; x < uw; x++ {
					if y*g/uh == c/g && x*g/uw == c%g {
						vals = append(vals, m[i*uh*uw+y*uw+x])
					}
				}
			}
			out[i*g*g+c] = Reduce(vals, reduce)
		}
	}
	return out
}

// Update returns the M-step's new kernels θ_k = S_k / Ñ_k and log mixing
// weights log π_k = log(N_k / T) from an epoch's numerator S (K·D) and log
// counts b (K): N_k = exp(b_k), T = Σ N_k, Ñ_k = (T·N_k + 1)/(T + 1).
func Update(s, logCounts []float64) (theta, logPrior []float64) {
	k := len(logCounts)
	d := len(s) / k
	var total float64
	for _, b := range logCounts {
		total += math.Exp(b)
	}
	theta = make([]float64, len(s))
	logPrior = make([]float64, k)
	for kk, b := range logCounts {
		nk := math.Exp(b)
		for i := 0; i < d; i++ {
			theta[kk*d+i] = s[kk*d+i] / ((total*nk + 1) / (total + 1))
		}
		logPrior[kk] = b - math.Log(total)
	}
	return theta, logPrior
}

// Pyramid pools each map of m by the grids 1…g (Pool) and lays the levels
// side by side, map by map: Σ_{i≤g} i² values per map.
func Pyramid(m []float64, uh, uw, g int, reduce string) []float64 {
	maps := len(m) / (uh * uw)
	var out []float64
	for i := 0; i < maps; i++ {
		for level := 1; level <= g; level++ {
			out = append(out, Pool(m[i*uh*uw:(i+1)*uh*uw], uh, uw, level, reduce)...)
		}
	}
	return out
}

// Reduce reduces v by "lse" (log-sum-exp), "max" or "mean".
func Reduce(v []float64, reduce string) float64 {
	switch reduce {
	case "max":
		m := math.Inf(-1)
		for _, x := range v {
			m = math.Max(m, x)
		}
		return m
	case "mean":
		var s float64
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	return LogSumExp(v)
}

// LocalPool reduces each map H×W of m over windows of size×size with
// stride size (windows at the far edges hold what is left) by reduce.
func LocalPool(m []float64, h, w, size int, reduce string) []float64 {
	oh, ow := (h+size-1)/size, (w+size-1)/size
	maps := len(m) / (h * w)
	out := make([]float64, 0, maps*oh*ow)
	for i := 0; i < maps; i++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				var vals []float64
				for y := oy * size; y < min((oy+1)*size, h); y++ {
					for x := ox * size; x < min((ox+1)*size, w); x++ {
						vals = append(vals, m[i*h*w+y*w+x])
					}
				}
				out = append(out, Reduce(vals, reduce))
			}
		}
	}
	return out
}

// KernelSoftmax returns, for maps m (N,K,U), the softmax over k at each
// (n, u).
func KernelSoftmax(m []float64, n, k, u int) []float64 {
	out := make([]float64, len(m))
	for i := 0; i < n; i++ {
		for p := 0; p < u; p++ {
			col := make([]float64, k)
			for kk := range col {
				col[kk] = m[(i*k+kk)*u+p]
			}
			lse := LogSumExp(col)
			for kk := range col {
				out[(i*k+kk)*u+p] = math.Exp(col[kk] - lse)
			}
		}
	}
	return out
}

// Distances returns ‖patch_u(x_n) − θ_k‖², (N,K,Uh,Uw), summed over the
// C·Width·Width values of each patch.
func (l Layer) Distances(x, theta []float32) []float64 {
	uh, uw := l.Positions()
	d := l.C * l.Width * l.Width
	out := make([]float64, l.N*l.K*uh*uw)
	for n := 0; n < l.N; n++ {
		for k := 0; k < l.K; k++ {
			for y := 0; y < uh; y++ {
				for xx := 0; xx < uw; xx++ {
					var s float64
					for c := 0; c < l.C; c++ {
						for a := 0; a < l.Width; a++ {
							for b := 0; b < l.Width; b++ {
								v := l.Pixel(x, n, c, y+a, xx+b) - float64(theta[k*d+(c*l.Width+a)*l.Width+b])
								s += v * v
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
