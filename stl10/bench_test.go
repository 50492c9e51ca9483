package stl10_test

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"calm/stl10"
	"calm/stl10/stl10test"
)

// BenchmarkRead times reading and whitening one STL-10 batch of 200 images
// (what every batch of an epoch costs on top of the E-step and M-step).
func BenchmarkRead(b *testing.B) {
	const n = 200
	rng := rand.New(rand.NewPCG(1, 2))
	pix := make([]byte, n*stl10.ImageSize)
	for i := range pix {
		pix[i] = byte(rng.IntN(256))
	}
	p := filepath.Join(b.TempDir(), "x.bin")
	if err := stl10test.WriteImages(p, pix); err != nil {
		b.Fatal(err)
	}
	im, err := stl10.Open(p, true)
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	dst := make([]float32, n*stl10.ImageSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := im.Read(dst, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}
