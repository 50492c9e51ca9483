// Package experiment runs one CALM experiment end to end into an output
// directory: train the layers by EM (each with a checkpoint after every
// epoch), pool their features, fit the softmax classifier on them (and on
// raw pixels, for comparison, and on subsets of the labels, to show what
// labels buy), and write the figures, the model, the features and the
// metrics.
//
// # Honest numbers
//
// Every choice is made on a validation split, the last
// Options.Validation labelled images: the classifier is fitted on the
// labelled images before them and scored on them (its C, with ChooseC;
// the main feature set; the epoch curve of what EM does); then the chosen
// classifier is refitted on every labelled image and scored on the test
// set once. The test labels enter that score and nothing else, and each
// fit of the label study sees the labels of its own subset alone.
// [RunSeeds] repeats a run for several seeds and [Summarise] gives the
// mean and standard deviation of their accuracies.
//
// It is its own package because cmd/mnist, cmd/cifar10, cmd/calm and
// cmd/stl10 share all of it and a main package should only parse flags;
// none of estep, mstep, em or viz should know about the others' outputs.
package experiment
