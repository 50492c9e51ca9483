package classify

import (
	"calm/gemm"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var benchSink float64

// readBandwidth measures, once per run, the bytes a second all cores read
// from memory: each core sums its share of a 1 GiB buffer, far larger
// than any cache. The denominator of %bandwidth.
var readBandwidth = sync.OnceValue(func() float64 {
	buf := make([]float32, 1<<28)
	for i := range buf {
		buf[i] = float32(i & 7)
	}
	workers := runtime.GOMAXPROCS(0)
	sums := make([]float32, workers*16)
	best := 0.0
	for rep := 0; rep < 3; rep++ {
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				part := buf[w*len(buf)/workers : (w+1)*len(buf)/workers]
				var s0, s1, s2, s3 float32
				for i := 0; i+3 < len(part); i += 4 {
					s0 += part[i]
					s1 += part[i+1]
					s2 += part[i+2]
					s3 += part[i+3]
				}
				sums[w*16] = s0 + s1 + s2 + s3
			}(w)
		}
		wg.Wait()
		best = max(best, float64(4*len(buf))/time.Since(start).Seconds())
	}
	return best
})

// BenchmarkObjective times one evaluation of the objective and its
// gradient, ten classes, with each way of computing the products in
// float32 (the pass every L-BFGS iteration makes over the rows), on
// standardised features of two shapes: 20 000 rows of 6 400 (a CIFAR-10
// layer's quadrants of 1 600 kernels) and 50 000 of 1 152 (the MNIST
// default's 3×3 cells of 128 kernels). It reports the rows' bytes read a second
// and their share of the memory bandwidth measured in the same run.
func BenchmarkObjective(b *testing.B) {
	for _, size := range []struct {
		name string
		n, d int
	}{{"CIFAR", 20000, 6400}, {"MNIST", 50000, 1152}} {
		for _, c := range []struct {
			name  string
			hinge bool
		}{{"softmax", false}, {"svm", true}} {
			for _, products := range productsOf[:2] {
				if products.narrow && !gemm.NarrowFast() {
					continue // the Go loops stand in for the kernels only to be correct
				}
				b.Run(size.name+"/"+c.name+"/"+strings.ReplaceAll(products.name, " ", "-"), func(b *testing.B) {
					n, d, k := size.n, size.d, 10
					x, y, w := randomProblem(rand.New(rand.NewPCG(1, 1)), n, d, k, 0.01)
					obj := newObjectiveWith(x, y, n, d, k, 1e-4, false, products.narrow)
					obj.hinge = c.hinge
					grad := make([]float64, len(w))
					bw := readBandwidth()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						benchSink += obj.eval(w, grad)
					}
					gbs := float64(4*n*d) * float64(b.N) / b.Elapsed().Seconds()
					b.ReportMetric(gbs/1e9, "GB/s")
					b.ReportMetric(100*gbs/bw, "%bandwidth")
					b.ReportMetric(bw/1e9, "bandwidth-GB/s")
				})
			}
		}
	}
}
