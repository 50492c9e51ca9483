// Package cifar10 reads CIFAR-10's binary distribution (the
// cifar-10-batches-bin folder users download): 50 000 training images in
// data_batch_1.bin … data_batch_5.bin and 10 000 test images in
// test_batch.bin, each file a run of 3 073-byte records, one label byte
// (0–9) then 3 072 pixel bytes, the R, G and B planes of a 32×32 image,
// row-major.
//
// A Set holds a split as bytes (153 MB for the training images, not the
// 614 MB of float32) and converts each batch to float32 in [0, 1] as it is
// read: it is an dataset.Source. Load orders each split class by class, keeping
// the files' order within a class: the order of an image folder whose
// class folders hold the images numbered in that order, such as the JPEG
// copy beside this project, so the two give the same validation split and,
// for the same pixels, the same kernels bit for bit.
//
// Every size is checked before anything is allocated with it: a file must
// hold a whole, non-zero number of records, at most MaxRecords, and a
// record's label must be a class. Malformed data is a *FormatError; a
// record cut short is io.ErrUnexpectedEOF.
package cifar10
