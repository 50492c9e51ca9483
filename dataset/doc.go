// Package dataset defines Source, the images a layer trains on and
// features are computed from, read in order a batch at a time.
//
// It sits below em and the readers (mnist, cifar10, stl10, imagefolder)
// so that a reader hands its images to training without importing the
// trainer: a reader returns an [Images] held in memory, and [Concat],
// [First] and [Subset] make one source of others without copying.
package dataset
