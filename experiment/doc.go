// Package experiment runs one CALM experiment end to end, as the commands
// in cmd/ offer it: train the layer by EM, pool its features, fit the softmax
// classifier on them (and on raw pixels, for comparison), and write the
// figures, θ and the metrics into an output directory.
//
// It is its own package because cmd/mnist and cmd/stl10 share all of it and
// a main package should only parse flags; none of estep, mstep, em or viz
// should know about the others' outputs.
package experiment
