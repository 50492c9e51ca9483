package mnist_test

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calm/mnist"
)

// writeSet writes an MNIST-format data set of nTrain and nTest images of
// 6×5 into dir, gzipped or not; pixel i of image n is byte(n+i).
func writeSet(t *testing.T, dir string, nTrain, nTest, nTrainLabels int, zip bool) {
	t.Helper()
	file := func(name string, header []uint32, body []byte) {
		var b bytes.Buffer
		binary.Write(&b, binary.BigEndian, header)
		b.Write(body)
		data := b.Bytes()
		if zip {
			var z bytes.Buffer
			w := gzip.NewWriter(&z)
			w.Write(data)
			w.Close()
			data, name = z.Bytes(), name+".gz"
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images := func(n int) []byte {
		b := make([]byte, n*30)
		for i := range b {
			b[i] = byte(i/30 + i%30)
		}
		return b
	}
	labels := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i % 10)
		}
		return b
	}
	file(mnist.Files[0], []uint32{0x803, uint32(nTrain), 6, 5}, images(nTrain))
	file(mnist.Files[1], []uint32{0x801, uint32(nTrainLabels)}, labels(nTrainLabels))
	file(mnist.Files[2], []uint32{0x803, uint32(nTest), 6, 5}, images(nTest))
	file(mnist.Files[3], []uint32{0x801, uint32(nTest)}, labels(nTest))
}

func TestLoad(t *testing.T) {
	for _, zip := range []bool{false, true} {
		dir := t.TempDir()
		writeSet(t, dir, 12, 4, 12, zip)
		train, test, err := mnist.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if train.N != 12 || test.N != 4 || train.Rows != 6 || train.Cols != 5 {
			t.Fatalf("zip=%v: got %d and %d images of %d×%d", zip, train.N, test.N, train.Rows, train.Cols)
		}
		// Image 3, pixel 7: byte(3+7)/255.
		if got, want := train.Pixels[3*30+7], float32(10)/255; got != want {
			t.Errorf("zip=%v: pixel = %v, want %v", zip, got, want)
		}
		if train.Labels[11] != 1 {
			t.Errorf("zip=%v: label 11 = %d, want 1", zip, train.Labels[11])
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 12, 4, 11, false)
	_, _, err := mnist.Load(dir)
	if err == nil || !strings.Contains(err.Error(), "12 images but") {
		t.Errorf("12 images and 11 labels: error %v, want a count mismatch", err)
	}
	_, _, err = mnist.Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no train-images-idx3-ubyte") {
		t.Errorf("empty directory: error %v, want a missing-file error", err)
	}
}

// TestDefaultDir finds the GoMNIST module's files and checks the training
// images' size and magic number, as the original distribution has them.
func TestDefaultDir(t *testing.T) {
	dir, err := mnist.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "train-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	// The MD5 of the original distribution's file.
	if sum := fmt.Sprintf("%x", md5.Sum(data)); sum != "f68b3c2dcbeaaa9fbdd348bbdeb94873" {
		t.Errorf("train-images-idx3-ubyte.gz has MD5 %s, want f68b3c2dcbeaaa9fbdd348bbdeb94873", sum)
	}
}
