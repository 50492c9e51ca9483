// Package imagefolder reads a folder of image files as streamed image sets
// for calm: the layout torchvision's ImageFolder and Keras's
// image_dataset_from_directory use, one subfolder per class, or the image
// files directly (unlabelled).
//
// A data set's root holds train/ and, optionally, test/ and unlabeled/
// ([Load]); each is either class folders of images or images. PNG, JPEG
// and GIF decode with the standard library, BMP, TIFF and WebP with
// golang.org/x/image. Files are taken in sorted path order; class labels
// number the class folders in sorted name order. A [Set] is an dataset.Source:
// its images are decoded when read, a batch in parallel, never all held in
// memory.
//
// Pixels become float32 in [0, 1]: with one channel the luminance
// (color.GrayModel: 0.299 R + 0.587 G + 0.114 B), an 8-bit grey value v as
// v/255 exactly (as package mnist reads MNIST); with three channels R, G
// and B, one plane each. With Options.Size an image is resized so that its
// shorter side is Size (bilinear, golang.org/x/image/draw) and its centre
// Size×Size cut out; without it every image must have the first one's size.
//
// Every file is decoded once when a set is opened, so that a corrupt or
// truncated file, an empty class folder, mixed sizes or a folder without
// images stop the run before training, with an error naming the file
// (Options.SkipBad skips undecodable files instead, and counts them).
//
// It is a package of its own, beside idx, mnist and stl10, because it is
// one more file format: none of the graph, EM or experiment packages is
// its home.
package imagefolder
