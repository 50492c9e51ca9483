// Package layering holds the rule of docs/architecture.md that each
// package of calm imports only the packages below it, as levels, and its
// test, which checks the module's imports (go list) against them.
//
// It is a package of its own because the rule is about every other
// package and belongs to none of them.
package layering
