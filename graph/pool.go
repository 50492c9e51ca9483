package graph

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"calm/internal/enum"
	"calm/internal/vecmath"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A Pooling turns a log joint L (N,K,Uh,Uw) into features (N,K,G,G). The
// positions are split into a Grid×Grid grid of cells whose edges are as
// even as the grid allows (along an axis of U positions, cell i holds the
// positions u with ⌊u·G/U⌋ = i), and each cell is reduced to one number:
//
//	LogSumExp: f[n,k,cell] = log Σ_{u∈cell} exp L[n,k,u]
//	Max:       f[n,k,cell] = max_{u∈cell} L[n,k,u]
//	Mean:      f[n,k,cell] = the mean of L[n,k,u] over the cell
//
// With LogSumExp, f is the log likelihood of image n under kernel k with
// its patch confined to the cell (up to a constant); Grid 1 is the paper's
// image-wide feature.
//
// A Pyramid pooling is the spatial pyramid of grids 1, 2, …, Grid side by
// side: features (N,K,1,P), P = Σ_{g=1…Grid} g², each map's cells level by
// level, each level's cells row by row.
//
// A Posterior pooling pools, instead of L, the posterior over kernels at
// each position (KernelPosterior, the patch model's soft assignment of each
// patch): with MeanCells, the share of each cell's patches that each kernel
// explains. The feature graphs apply it (Pool itself pools what it is
// given).
//
// A Root pooling takes the square root of each feature of a posterior's
// MeanCells pooling: the Hellinger map of the kernels' shares of a cell
// (the dot product of two such cells is the Bhattacharyya coefficient of
// their shares), which damps the kernels that dominate a cell: the power
// normalisation of histogram features (Perronnin, Sánchez & Mensink 2010).
//
// A posterior pooling may set a Temperature T: it then pools the posterior
// ∝ exp(L/T), softer than the layer's own for T > 1 (the posterior of
// Gaussians of variance T instead of 1), an encoding of its own.
//
// A Triangle pooling pools Coates, Lee & Ng's triangle encoding of the
// log joint (Triangle, from the layer's input), max(0, mean_j z_j − z_k)
// with z_k the distance of the patch to kernel k: the in-project k-means
// baseline's encoding, with MeanCells.
type Pooling struct {
	Reduce      Reduction
	Grid        int     // cells per side, at least 1 (of the finest level of a pyramid)
	Pyramid     bool    // grids 1…Grid side by side
	Posterior   bool    // pool the posterior over kernels, not the log joint
	Root        bool    // √ of each feature; only with Posterior and MeanCells
	Temperature float64 // with Posterior: of the posterior pooled, ∝ exp(L/T); 0 or 1 for the layer's own
	Triangle    bool    // pool the triangle encoding of the log joint; only with MeanCells
}

// A Reduction is how a Pooling, or a Transform's local pooling, reduces a
// cell.
type Reduction int

const (
	LogSumExpCells Reduction = iota // log Σ exp over the cell
	MaxCells                        // max over the cell
	MeanCells                       // mean over the cell
)

var reductionNames = enum.Names[Reduction]{Package: "graph", What: "reduction", List: []string{LogSumExpCells: "lse", MaxCells: "max", MeanCells: "mean"}}

// String returns the reduction's name, the one every flag and file uses:
// "lse", "max" or "mean".
func (r Reduction) String() string { return reductionNames.String(r) }

// ParseReduction returns the reduction of the given name (see String).
func ParseReduction(name string) (Reduction, error) { return reductionNames.Parse(name) }

// MarshalText writes the reduction's name.
func (r Reduction) MarshalText() ([]byte, error) { return reductionNames.Marshal(r) }

// UnmarshalText reads a reduction's name.
func (r *Reduction) UnmarshalText(b []byte) error { return reductionNames.Unmarshal(b, r) }

// ImageWide is the paper's pooling: one log-sum-exp over all positions.
var ImageWide = Pooling{Reduce: LogSumExpCells, Grid: 1}

// Name returns the pooling's name, the one the -pool flag and every file
// use: "image" (the paper's, ImageWide); the reduction's name and the grid,
// "lse2", "max3", "mean4", … (the reduction's name alone for a max or mean
// over the image); "lse-pyramid3", "max-pyramid2", … for a pyramid; any of
// these after "post-" for the pooled posterior, and "post-root-" before
// a mean pooling for its square root.
func (p Pooling) Name() string {
	if p.Triangle {
		q := p
		q.Triangle = false
		return "tri-" + q.Name()
	}
	if p.Posterior {
		q := p
		q.Posterior, q.Root, q.Temperature = false, false, 0
		prefix := "post-"
		if p.Tempered() {
			prefix += "t" + strconv.FormatFloat(p.Temperature, 'g', -1, 64) + "-"
		}
		if p.Root {
			return prefix + "root-" + q.Name()
		}
		return prefix + q.Name()
	}
	switch {
	case p.Pyramid:
		return fmt.Sprintf("%s-pyramid%d", p.Reduce, p.Grid)
	case p == ImageWide:
		return "image"
	case p.Grid == 1:
		return p.Reduce.String()
	}
	return fmt.Sprintf("%s%d", p.Reduce, p.Grid)
}

func (p Pooling) String() string { return p.Name() }

// MarshalText writes the pooling's name.
func (p Pooling) MarshalText() ([]byte, error) { return []byte(p.Name()), nil }

// UnmarshalText reads a pooling's name.
func (p *Pooling) UnmarshalText(b []byte) error {
	v, err := ParsePooling(string(b))
	*p = v
	return err
}

// Tempered reports whether a posterior pooling has a temperature of its
// own (not 0 or 1).
func (p Pooling) Tempered() bool { return p.Temperature != 0 && p.Temperature != 1 }

// Features is the number of features per image for K kernels: K·G·G, or
// K·P for a pyramid.
func (p Pooling) Features(kernels int) int { return kernels * p.cellsPerMap() }

// cellsPerMap is G·G, or Σ_{g ≤ G} g² for a pyramid.
func (p Pooling) cellsPerMap() int {
	if !p.Pyramid {
		return p.Grid * p.Grid
	}
	return p.Grid * (p.Grid + 1) * (2*p.Grid + 1) / 6
}

// levels returns the grids a pooling reduces each map to: G, or 1…G.
func (p Pooling) levels() []int {
	if !p.Pyramid {
		return []int{p.Grid}
	}
	var g []int
	for i := 1; i <= p.Grid; i++ {
		g = append(g, i)
	}
	return g
}

// ParsePooling returns the pooling of the given name (see Pooling.Name).
func ParsePooling(name string) (Pooling, error) {
	bad := fmt.Errorf("graph: unknown pooling %q (want image, max, mean, lseG, maxG, meanG, lse-pyramidG, max-pyramidG or mean-pyramidG with G ≥ 1, each optionally after post- or post-tT-; mean, meanG or mean-pyramidG after post-root-, post-tT-root- or tri-)", name)
	if rest, ok := strings.CutPrefix(name, "tri-"); ok {
		p, err := ParsePooling(rest)
		if err != nil || p.Posterior || p.Triangle || p.Reduce != MeanCells {
			return Pooling{}, bad
		}
		p.Triangle = true
		return p, nil
	}
	if rest, ok := strings.CutPrefix(name, "post-"); ok {
		var temp float64
		if t, after, ok := strings.Cut(rest, "-"); ok && strings.HasPrefix(t, "t") {
			v, err := strconv.ParseFloat(t[1:], 64)
			if err != nil || !(v > 0) || math.IsInf(v, 0) {
				return Pooling{}, bad
			}
			temp, rest = v, after
		}
		rest, root := strings.CutPrefix(rest, "root-")
		p, err := ParsePooling(rest)
		if err != nil || p.Posterior || p.Triangle || root && p.Reduce != MeanCells {
			return Pooling{}, bad
		}
		p.Posterior, p.Root, p.Temperature = true, root, temp
		if p.Name() != name {
			return Pooling{}, fmt.Errorf("graph: pooling %q is named %s", name, p.Name())
		}
		return p, nil
	}
	if name == "image" {
		return ImageWide, nil
	}
	if r, err := ParseReduction(name); err == nil && r != LogSumExpCells {
		return Pooling{Reduce: r, Grid: 1}, nil
	}
	for r, prefix := range reductionNames.List {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		p := Pooling{Reduce: Reduction(r)}
		rest, p.Pyramid = strings.CutPrefix(rest, "-pyramid")
		g, err := strconv.Atoi(rest)
		if err != nil || g < 1 || rest != strconv.Itoa(g) {
			return Pooling{}, bad
		}
		p.Grid = g
		if p.Name() != name {
			return Pooling{}, fmt.Errorf("graph: pooling %q is named %s", name, p.Name())
		}
		return p, nil
	}
	return Pooling{}, bad
}

// Pool adds to x's graph a node pooling the log joint x (N,K,Uh,Uw) into
// features (N,K,G,G) by p, or (N,K,1,P) for a pyramid, in float64 where it
// sums.
func Pool(x *G.Node, p Pooling) (*G.Node, error) {
	if err := checkMaps("pool", x); err != nil {
		return nil, err
	}
	s := x.Shape()
	if p.Grid < 1 || p.Grid > s[2] || p.Grid > s[3] {
		return nil, fmt.Errorf("graph: pool: a %d×%d grid over %d×%d positions leaves cells empty", p.Grid, p.Grid, s[2], s[3])
	}
	if p.Reduce != LogSumExpCells && p.Reduce != MaxCells && p.Reduce != MeanCells {
		return nil, fmt.Errorf("graph: pool: unknown reduction %d", p.Reduce)
	}
	if p.Root && !(p.Posterior && p.Reduce == MeanCells) {
		// The square root is defined for the shares of a posterior, not
		// for a log joint or a cell's maximum.
		return nil, fmt.Errorf("graph: pool: Root on %s: the square root takes a posterior's mean pooling", p.Name())
	}
	if p.Triangle && (p.Posterior || p.Reduce != MeanCells) {
		return nil, fmt.Errorf("graph: pool: %s: the triangle encoding takes a mean pooling of its own", p.Name())
	}
	return apply("pool", poolOp{opBase: newBase(sig(4, 4), "Pool/%s", p.Name()), p: p}, x)
}

type poolOp struct {
	opBase
	p Pooling
}

func (op poolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	shapes, err := op.shapes(in)
	if err != nil {
		return nil, err
	}
	return op.p.shape(shapes[0][0], shapes[0][1]), nil
}

// shape is the shape of the features of n images' maps of k kernels:
// (N,K,G,G), or (N,K,1,P) for a pyramid.
func (p Pooling) shape(n, k int) tensor.Shape {
	if p.Pyramid {
		return tensor.Shape{n, k, 1, p.cellsPerMap()}
	}
	return tensor.Shape{n, k, p.Grid, p.Grid}
}

func (op poolOp) Do(vals ...G.Value) (G.Value, error) {
	in, shapes, out, err := op.prepare(vals, op.InferShape)
	if err != nil {
		return nil, err
	}
	x, shape, o := in[0], shapes[0], out.Data().([]float32)
	uh, uw := shape[2], shape[3]
	u, per := uh*uw, op.p.cellsPerMap()
	var levels []*cells
	for _, g := range op.p.levels() {
		levels = append(levels, newCells(uh, uw, g))
	}
	maps := shape[0] * shape[1]
	parallel(maps, func(_, lo, hi int) {
		e := make([]float32, u)
		sums := make([]float64, op.p.Grid*op.p.Grid)
		for m := lo; m < hi; m++ {
			op.p.poolMap(o[m*per:(m+1)*per], x[m*u:(m+1)*u], levels, e, sums)
		}
	})
	return out, nil
}

// poolMap pools one map m (Uh×Uw positions) into its cells at each level
// of levels, side by side in f; e (one value a position) and sums (one a
// cell) are scratch.
func (p Pooling) poolMap(f, m []float32, levels []*cells, e []float32, sums []float64) {
	for _, cells := range levels {
		n := cells.g * cells.g
		switch p.Reduce {
		case MaxCells:
			cells.max(f[:n], m)
		case MeanCells:
			cells.mean(f[:n], m, sums[:n])
			if p.Root {
				for j, v := range f[:n] {
					f[j] = float32(math.Sqrt(float64(v)))
				}
			}
		default:
			cells.logSumExp(f[:n], m, e, sums[:n])
		}
		f = f[n:]
	}
}

// cells maps the positions of a Uh×Uw map to a G×G grid.
type cells struct {
	uh, uw, g int
	row, col  []int // cell row of each position row, cell column of each position column
	rowStarts []int // first position row of each cell row, and uh
	colStarts []int // first position column of each cell column, and uw
}

func newCells(uh, uw, g int) *cells {
	c := &cells{uh: uh, uw: uw, g: g, row: make([]int, uh), col: make([]int, uw)}
	for y := range c.row {
		c.row[y] = y * g / uh
	}
	for x := range c.col {
		c.col[x] = x * g / uw
	}
	starts := func(n int) []int {
		s := make([]int, g+1)
		for i := 0; i <= g; i++ {
			s[i] = (i*n + g - 1) / g // the first u with ⌊u·g/n⌋ ≥ i
		}
		return s
	}
	c.rowStarts, c.colStarts = starts(uh), starts(uw)
	return c
}

// max sets f[cell] to the largest value of the map m in the cell; NaN
// wins.
func (c *cells) max(f, m []float32) {
	for i := range f {
		f[i] = float32(math.Inf(-1))
	}
	for y := 0; y < c.uh; y++ {
		fr := f[c.row[y]*c.g:]
		for x, v := range m[y*c.uw : (y+1)*c.uw] {
			if cur := fr[c.col[x]]; v > cur || v != v {
				if cur == cur {
					fr[c.col[x]] = v
				}
			}
		}
	}
}

// sum sets sums[cell] to the sum of the map m over the cell, in float64.
func (c *cells) sum(sums []float64, m []float32) {
	clear(sums)
	for y := 0; y < c.uh; y++ {
		sr := sums[c.row[y]*c.g:]
		for x, v := range m[y*c.uw : (y+1)*c.uw] {
			sr[c.col[x]] += float64(v)
		}
	}
}

// mean sets f[cell] to the mean of the map m over the cell, summed in
// float64.
func (c *cells) mean(f, m []float32, sums []float64) {
	c.sum(sums, m)
	for i, s := range sums {
		cy, cx := i/c.g, i%c.g
		n := (c.rowStarts[cy+1] - c.rowStarts[cy]) * (c.colStarts[cx+1] - c.colStarts[cx])
		f[i] = float32(s / float64(n))
	}
}

// logSumExp sets f[cell] to log Σ_{u∈cell} exp m[u]. The exponentials are
// taken once for the whole map against its maximum (vectorised, into e);
// a cell whose sum underflows that way is summed again against its own
// maximum.
func (c *cells) logSumExp(f, m, e []float32, sums []float64) {
	top := vecmath.Max(m)
	if t := float64(top); math.IsInf(t, 0) || t != t {
		for i := range f {
			f[i] = float32(c.exactCell(m, i/c.g, i%c.g))
		}
		return
	}
	vecmath.ExpSum(e, m, top)
	c.sum(sums, e)
	for i, s := range sums {
		if s < 1e-30 {
			f[i] = float32(c.exactCell(m, i/c.g, i%c.g))
			continue
		}
		f[i] = float32(float64(top) + math.Log(s))
	}
}

// exactCell returns log Σ exp over one cell in float64 against the cell's
// own maximum (windowLSE).
func (c *cells) exactCell(m []float32, cy, cx int) float64 {
	return windowLSE(m, c.uw, c.rowStarts[cy], c.rowStarts[cy+1], c.colStarts[cx], c.colStarts[cx+1])
}
