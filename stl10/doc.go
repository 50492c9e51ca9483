// Package stl10 reads the STL-10 binary distribution and whitens its images
// the way the CALM reference does, batch by batch as they are read: the
// 100 000 unlabelled images are 2.8 GB as bytes and 11 GB as float32, so
// they are never held in memory.
//
// The files are train_X.bin, train_y.bin, test_X.bin, test_y.bin and
// unlabeled_X.bin: images of 3×96×96 bytes, each channel stored
// column-major, and labels of one byte each, 1 to 10 (returned as 0 to 9).
//
// # Whitening
//
// Each 96×96 channel of each image, scaled to [0, 1], is whitened on its
// own as a matrix x whose rows are the variables (the reference's ZCA):
// subtract each row's mean, C = x·xᵀ/96 + 1e-7·I, C = V·diag(d)·Vᵀ, and
// x ← V·diag(1/s)·Vᵀ·x with s = √d, or √d + 1 where √d < 1e-5. The
// whitened rows have covariance I − 1e-7·C⁻¹. It runs in float64 with
// gonum's symmetric eigendecomposition.
package stl10
