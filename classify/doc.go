// Package classify fits a multinomial logistic (softmax) regression with an
// L2 penalty, the classifier the CALM paper puts on top of its features.
//
// The objective is scikit-learn's for LogisticRegression(C) with the lbfgs
// solver, scaled by 1/n (same optimum):
//
//	(1/n) Σ_i −log softmax(W·x_i + b)[y_i]  +  ‖W‖² / (2·C·n)
//
// (the intercept b is not penalised). Features are standardised on the
// training set first, as a converged, well-conditioned fit needs. Train
// runs L-BFGS (gonum/optimize) until the gradient's largest entry falls
// below Settings.GradTol (1e-4 by default; the products are float32 GEMMs
// of package gemm, one pass over the data per evaluation, which bound the
// reachable gradient near 1e-5; Settings.Exact computes them in float64),
// and says how it stopped. [ChooseC] picks C by validation on rows the caller
// holds out of the fit (never the test rows).
package classify
