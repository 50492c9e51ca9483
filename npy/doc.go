// Package npy reads and writes NumPy's .npy format for the float32 arrays
// calm keeps on disk (kernels, whitening filters, checkpoints, features):
// Encode writes an array to a stream, Decode reads one back.
//
// Only C-ordered little-endian float32 ('<f4') is handled, versions 1.0 to
// 3.0 of the format read, 1.0 written. Decode checks every size the
// header declares against the data it holds before it allocates anything,
// and the header's length against MaxHeader; malformed input is a
// *FormatError, input it does not handle (another dtype, Fortran order)
// an *UnsupportedError, and a stream cut short io.ErrUnexpectedEOF, as
// image/png does.
//
// It is a package of its own because the files it reads and writes belong
// to no one step of training: em, experiment and the commands all keep
// arrays, and a format reader is best tested (and fuzzed) on its own.
package npy
