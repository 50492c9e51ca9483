package enum_test

import (
	"testing"

	"calm/internal/enum"
)

type colour int

var colours = enum.Names[colour]{Package: "paint", What: "colour", List: []string{"red", "green"}}

func TestNames(t *testing.T) {
	for i, name := range colours.List {
		v, err := colours.Parse(name)
		if err != nil || v != colour(i) || colours.String(v) != name {
			t.Errorf("Parse(%q) = %v, %v; String = %q", name, v, err, colours.String(v))
		}
		b, err := colours.Marshal(v)
		var back colour = 7
		if err != nil || string(b) != name || colours.Unmarshal(b, &back) != nil || back != v {
			t.Errorf("%q: marshalled %q, %v; read back %v", name, b, err, back)
		}
	}
	if _, err := colours.Parse("blue"); err == nil || err.Error() != `paint: unknown colour "blue" (want red, green)` {
		t.Errorf("Parse(blue): %v, want an error listing the names", err)
	}
	if s := colours.String(5); s != "colour(5)" {
		t.Errorf("String(5) = %q", s)
	}
	if _, err := colours.Marshal(-1); err == nil {
		t.Error("Marshal(-1): want an error")
	}
	v := colour(1)
	if err := colours.Unmarshal([]byte("blue"), &v); err == nil || v != 1 {
		t.Errorf("Unmarshal(blue) = %v, left %v; want an error and the value kept", err, v)
	}
}
