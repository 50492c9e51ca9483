// Package idx reads the IDX files of MNIST and Fashion-MNIST: unsigned-byte
// images (magic 0x00000803) and labels (magic 0x00000801), gzipped or not.
//
// Like image/png, it checks every size read from a header (positive, no
// overflow, within a cap) before it allocates anything with it, reports a
// file that ends early as io.ErrUnexpectedEOF, and never closes a reader it
// was given. Malformed input is a *FormatError.
package idx
