// Package cli is the plumbing the experiment commands (cmd/mnist,
// cmd/stl10) share: their flags and presets, the progress line, signals,
// one-line errors and exit statuses. It holds no experiment logic: the
// commands parse flags with it and hand the rest to package experiment.
package cli
