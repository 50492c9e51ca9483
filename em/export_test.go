package em

import "gorgonia.org/tensor"

// InitialTheta returns the kernels Train starts from with settings s on
// src: s.Init if set, else a draw by s.InitFrom. For the tests of package
// em_test.
func InitialTheta(src Source, s Settings) (*tensor.Dense, error) {
	s, cfg, err := s.Normalize(src.Shape())
	if err != nil {
		return nil, err
	}
	return initialTheta(src, s, cfg)
}
