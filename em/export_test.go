package em

import (
	"calm/dataset"

	"gorgonia.org/tensor"
)

// InitialTheta returns the kernels Train starts from with settings s on
// src: s.Init if set, else a draw by s.InitFrom. For the tests of package
// em_test.
func InitialTheta(src dataset.Source, s Settings) (*tensor.Dense, error) {
	s, cfg, err := s.Normalize(src.Shape())
	if err != nil {
		return nil, err
	}
	return initialTheta(src, s, cfg)
}

// SaveTheta writes kernels as a run directory holds them (theta-L.npy),
// for the tests that read them back.
func SaveTheta(path string, theta *tensor.Dense) error { return saveTheta(path, theta) }

// OnMapsClosed makes f run whenever a Maps is closed, until the returned
// function is called.
func OnMapsClosed(f func()) (restore func()) {
	testHookMapsClosed = f
	return func() { testHookMapsClosed = nil }
}
