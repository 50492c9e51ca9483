// Package experiment runs one CALM experiment end to end into an output
// directory: train the layers by EM (each with a checkpoint after every
// epoch), pool their features, fit the softmax classifier on them (and on
// raw pixels, for comparison, and on subsets of the labels, to show what
// labels buy), and write the figures, the model, the features and the
// metrics.
//
// It is its own package because cmd/mnist and cmd/stl10 share all of it
// and a main package should only parse flags; none of estep, mstep, em or
// viz should know about the others' outputs.
package experiment
