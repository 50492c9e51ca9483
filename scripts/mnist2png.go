//go:build ignore

// Mnist2png writes the first N training and M test images of MNIST as
// 28×28 grey PNG files in class folders, the layout cmd/calm reads:
//
//	go run scripts/mnist2png.go -train 2000 -test 500 -out DIR
//
// DIR/train/<label>/<index>.png and DIR/test/<label>/<index>.png.
package main

import (
	"flag"
	"fmt"
	"image"
	"image/png"
	"log"
	"os"
	"path/filepath"

	"calm/mnist"
)

func main() {
	nTrain := flag.Int("train", 2000, "training images")
	nTest := flag.Int("test", 500, "test images")
	out := flag.String("out", "mnist-png", "the folder to write")
	flag.Parse()
	dir, err := mnist.DefaultDir()
	if err != nil {
		log.Fatal(err)
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, split := range []struct {
		name string
		set  *mnist.Set
		n    int
	}{{"train", train, *nTrain}, {"test", test, *nTest}} {
		for i := 0; i < min(split.n, split.set.N); i++ {
			g := image.NewGray(image.Rect(0, 0, 28, 28))
			for j, v := range split.set.Pixels[i*784 : (i+1)*784] {
				g.Pix[j] = uint8(v*255 + 0.5)
			}
			path := filepath.Join(*out, split.name, fmt.Sprint(split.set.Labels[i]), fmt.Sprintf("%05d.png", i))
			if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
				log.Fatal(err)
			}
			f, err := os.Create(path)
			if err != nil {
				log.Fatal(err)
			}
			if err := png.Encode(f, g); err != nil {
				log.Fatal(err)
			}
			if err := f.Close(); err != nil {
				log.Fatal(err)
			}
		}
	}
}
