//go:build ignore

// Ksweep draws the validation accuracy of one-layer runs against their
// number of kernels, before EM (epoch 0 of the epoch curve) and after
// -epoch epochs of it (default: each run's last), from the runs'
// metrics.json, and prints the table.
//
//	go run scripts/ksweep.go -epoch 3 -out docs/mnist-ksweep.png DIR...
//
// Each DIR is the output directory of a cmd/mnist run with -epoch-curve.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"

	"calm/viz"
)

func main() {
	out := flag.String("out", "ksweep.png", "the figure to write")
	title := flag.String("title", "MNIST: validation accuracy against kernels", "its title")
	epoch := flag.Int("epoch", 0, "the epoch of the curve to compare with the seeding (0: each run's last)")
	flag.Parse()
	type row struct {
		k                int
		before, after    float64
		epochs, distinct int
	}
	var rows []row
	for _, dir := range flag.Args() {
		raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
		if err != nil {
			log.Fatal(err)
		}
		var m struct {
			Layers []struct {
				Kernels int `json:"kernels"`
			} `json:"layers"`
			Epochs []struct {
				Epoch              int     `json:"epoch"`
				ValidationAccuracy float64 `json:"validation_accuracy"`
				DistinctKernels    int     `json:"distinct_kernels"`
			} `json:"epochs"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || len(m.Epochs) < 2 || len(m.Layers) != 1 {
			log.Fatalf("%s: %v: want a one-layer run with an epoch curve", dir, err)
		}
		last := m.Epochs[len(m.Epochs)-1]
		for _, p := range m.Epochs {
			if p.Epoch == *epoch {
				last = p
			}
		}
		rows = append(rows, row{m.Layers[0].Kernels, m.Epochs[0].ValidationAccuracy, last.ValidationAccuracy, last.Epoch, last.DistinctKernels})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].k < rows[j].k })
	seeded := viz.Series{Name: "seeded (no EM)"}
	trained := viz.Series{Name: "after EM"}
	fmt.Println("| K | seeded | after EM (epochs) | change | distinct after EM |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range rows {
		seeded.Labels, seeded.Accuracy = append(seeded.Labels, r.k), append(seeded.Accuracy, r.before)
		trained.Labels, trained.Accuracy = append(trained.Labels, r.k), append(trained.Accuracy, r.after)
		fmt.Printf("| %d | %.2f %% | %.2f %% (%d) | %+.2f | %d |\n", r.k, 100*r.before, 100*r.after, r.epochs, 100*(r.after-r.before), r.distinct)
	}
	if err := viz.SaveAccuracy(*out, *title, "kernels K", "validation accuracy (%)", seeded, trained); err != nil {
		log.Fatal(err)
	}
}
