//go:build ignore

// Whiten-between measures a second layer trained on ZCA-whitened maps of a
// trained stack's first layer: the question whether the whitening that makes
// EM help on pixels (the patch model assumes patches of covariance I) helps
// a layer on top too. It loads the stack that a run of the deep preset wrote
// (its whitening and layer 1, with its standardisation), whitens layer 1's
// maps by a ZCA filter of width -f estimated from -sample of their patches
// (-f 0: none, which repeats the preset's layer 2), trains the preset's
// layer 2 (128 kernels of 5×5, the patch model, k-means++, one epoch, the
// run's seed) on the 60 000 training images, and prints the validation
// accuracy (fitted on the first 50 000 training images, scored on the last
// 10 000, C chosen from -grid) of layer 1's post-root-mean-pyramid3 beside
// layer 2's lse-pyramid3 (the preset's feature set) and of layer 2's
// features alone.
//
//	go run ./cmd/mnist -preset deep -labels "" -pixels=false -out out/deep
//	go run scripts/whiten-between.go -model out/deep -f 5 -eps 0.1
package main

import (
	"flag"
	"fmt"
	"log"
	"strconv"
	"strings"

	"calm/classify"
	"calm/dataset"
	"calm/em"
	"calm/estep"
	"calm/graph"
	"calm/mnist"
)

func main() {
	dir := flag.String("model", "out/deep", "the output directory of a -preset deep run")
	f := flag.Int("f", 5, "the width of the whitening filter between the layers (odd; 0: none)")
	eps := flag.Float64("eps", 0.1, "ε added to every eigenvalue of the whitening")
	sample := flag.Int("sample", 20000, "patches of layer 1's maps the whitening is estimated from")
	seed := flag.Uint64("seed", 0, "the run's seed (-seed): of layer 2's seeding and the whitening's patches")
	grid := flag.String("grid", "0.3,0.1,0.03,0.01", "the values of C validation chooses from")
	flag.Parse()
	log.SetFlags(0)
	var cs []float64
	for _, s := range strings.Split(*grid, ",") {
		c, err := strconv.ParseFloat(s, 64)
		check(err)
		cs = append(cs, c)
	}
	mdir, err := mnist.DefaultDir()
	check(err)
	train, test, err := mnist.Load(mdir)
	check(err)
	a, err := dataset.NewImages(train.Pixels, train.N, 1, train.Rows, train.Cols)
	check(err)
	b, err := dataset.NewImages(test.Pixels, test.N, 1, test.Rows, test.Cols)
	check(err)
	all, err := dataset.Concat(a, b)
	check(err)
	n := train.N + test.N
	st, err := em.LoadStack(*dir)
	check(err)
	if len(st.Layers) < 2 || st.Whitening == nil {
		log.Fatalf("%s: want a stack of two layers on whitened images (-preset deep)", *dir)
	}
	images, err := st.Whitening.Source(all, nil, 500)
	check(err)
	layer1 := &em.Stack{Layers: st.Layers[:1]}
	maps, err := layer1.Input(images, 1, nil, 500)
	check(err)
	var in dataset.Source = maps
	if *f > 0 {
		wh, err := em.NewWhitening(dataset.First(maps, train.N), *f, *eps, *sample, *seed)
		check(err)
		in, err = wh.Source(maps, nil, 500)
		check(err)
	}
	top := st.Layers[1].Config
	res, err := em.Train(dataset.First(in, train.N), em.Settings{Kernels: top.Kernels, Width: top.Width, Pad: top.Pad, Batch: 500, MaxEpochs: 1,
		InitFrom: em.InitKMeansPP, Seed: *seed, Model: graph.PatchModel})
	check(err)
	log.Printf("layer 2: LL %.6g, %d of %d kernels distinct", res.LogLik[0], em.Distinct(res.Theta.Data().([]float32), top.Kernels, 0.99), top.Kernels)
	p1, err := graph.ParsePooling("post-root-mean-pyramid3")
	check(err)
	l1, err := em.StackFeatures(images, layer1, estep.Pooled(p1, 0), nil, 500)
	check(err)
	d1 := len(l1) / n
	for _, name := range []string{"lse-pyramid3", "post-root-mean-pyramid3"} {
		p, err := graph.ParsePooling(name)
		check(err)
		l2, err := em.Features(in, res.Layer, p, nil, 500)
		check(err)
		d2 := len(l2) / n
		both := make([]float32, 0, n*(d1+d2))
		for i := range n {
			both = append(both, l1[i*d1:(i+1)*d1]...)
			both = append(both, l2[i*d2:(i+1)*d2]...)
		}
		validate(fmt.Sprintf("f=%d ε=%v: layer 1's post-root-mean-pyramid3 + layer 2's %s", *f, *eps, name), both, d1+d2, train.Labels, cs)
		validate(fmt.Sprintf("f=%d ε=%v: layer 2's %s", *f, *eps, name), l2, d2, train.Labels, cs)
	}
}

// validate fits on the first 50 000 training rows of x and prints the
// validation accuracy on the last 10 000 of the C that validates best.
func validate(name string, x []float32, d int, labels []byte, grid []float64) {
	fit, val := len(labels)-10000, len(labels)
	c, accs, err := classify.ChooseC(x[:fit*d], labels[:fit], x[fit*d:val*d], labels[fit:val], d, 10, grid, classify.Settings{})
	check(err)
	fmt.Printf("%s: validation %.2f %% (C = %v; grid %v: %v)\n", name, 100*classify.Accuracy(grid, accs, c), c, grid, accs)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
