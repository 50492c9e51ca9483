// Package enum names the values of calm's small integer types (the model,
// the reduction of a pooling, the initialisation) and parses them back,
// the one way every flag and file spells them. It is its own package
// because those types live in graph and em alike and each would otherwise
// repeat the same four methods.
package enum

import (
	"fmt"
	"strings"
)

// Names are the names of the values 0, 1, … of an integer type T; What
// says what a value is ("model") and Package whose type it is ("graph"),
// for errors.
type Names[T ~int] struct {
	Package, What string
	List          []string
}

// String returns v's name, or "What(v)" for a value without one.
func (n Names[T]) String(v T) string {
	if v >= 0 && int(v) < len(n.List) {
		return n.List[v]
	}
	return fmt.Sprintf("%s(%d)", n.What, int(v))
}

// Parse returns the value of the given name.
func (n Names[T]) Parse(name string) (T, error) {
	for i, s := range n.List {
		if s == name {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("%s: unknown %s %q (want %s)", n.Package, n.What, name, strings.Join(n.List, ", "))
}

// Marshal returns v's name as MarshalText does: an error for a value
// without one, so that no file records a name nothing can read back.
func (n Names[T]) Marshal(v T) ([]byte, error) {
	if v < 0 || int(v) >= len(n.List) {
		return nil, fmt.Errorf("%s: unknown %s %d", n.Package, n.What, int(v))
	}
	return []byte(n.List[v]), nil
}

// Unmarshal sets *v to the value named b, as UnmarshalText does.
func (n Names[T]) Unmarshal(b []byte, v *T) error {
	x, err := n.Parse(string(b))
	if err != nil {
		return err
	}
	*v = x
	return nil
}
