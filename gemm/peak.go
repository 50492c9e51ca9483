package gemm

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// peakChains is the number of independent FMA chains of the peak loops.
const peakChains = 14

// Peak is a measured float32 FMA peak, a multiply-add counted as 2 FLOPs.
type Peak struct {
	Bits     int     // vector width of the loop: 512 (ZMM) or 256 (YMM)
	Cores    int     // goroutines run at once for AllCores (GOMAXPROCS)
	PerCore  float64 // GFLOP/s of one goroutine alone
	AllCores float64 // GFLOP/s of Cores goroutines together
}

func (p Peak) String() string {
	return fmt.Sprintf("%d-bit FMA peak: %.0f GFLOP/s on one core, %.0f on %d", p.Bits, p.PerCore, p.AllCores, p.Cores)
}

// PeakWidths returns the vector widths, in bits, whose FMA loop this CPU
// runs, widest first.
func PeakWidths() []int {
	var w []int
	for _, bits := range []int{512, 256} {
		if _, ok := peakLoops()[bits]; ok {
			w = append(w, bits)
		}
	}
	return w
}

// MeasurePeak times a loop of independent vector FMAs on registers only
// (no memory traffic, so no code can beat it) for about d, first on one
// goroutine, then on GOMAXPROCS goroutines at once. bits selects the
// vector width (see PeakWidths).
func MeasurePeak(bits int, d time.Duration) (Peak, error) {
	loop, ok := peakLoops()[bits]
	if !ok {
		return Peak{}, fmt.Errorf("gemm: no %d-bit FMA loop on this CPU (have %v)", bits, PeakWidths())
	}
	flopsPerIter := float64(peakChains * 2 * bits / 32)
	// Calibrate the iterations that take about d/4 on one core.
	iters := 1 << 16
	for {
		start := time.Now()
		loop(iters)
		if el := time.Since(start); el > d/16 || iters > 1<<34 {
			iters = int(float64(iters) * float64(d/4) / float64(el+1))
			break
		}
		iters *= 4
	}
	iters = max(iters, 1)
	one := func() float64 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start := time.Now()
		loop(iters)
		return time.Since(start).Seconds()
	}
	p := Peak{Bits: bits, Cores: runtime.GOMAXPROCS(0)}
	best := one()
	best = min(best, one())
	p.PerCore = flopsPerIter * float64(iters) / best / 1e9
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < p.Cores; c++ {
		wg.Add(1)
		go func() { defer wg.Done(); one() }()
	}
	wg.Wait()
	p.AllCores = flopsPerIter * float64(iters) * float64(p.Cores) / time.Since(start).Seconds() / 1e9
	return p, nil
}
