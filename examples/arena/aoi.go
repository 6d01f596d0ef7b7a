package arena

import "math"

// grid is the world's area-of-interest index: the room cut into square
// cells, each holding the things (players, by ID; orbs, by number) in it.
// A player sees the things of its own cell and of the eight cells around
// it, so what it is sent grows with the crowd near it, not with the
// room's population.
//
// A grid is owned by the world actor: it is not safe for concurrent use.
type grid[K comparable] struct {
	cell       float64
	cols, rows int
	cells      []map[K]struct{} // by cell index, row-major
	where      map[K]int        // each thing's cell index
}

// newGrid returns an empty grid over a width x height room cut into
// cells of side cell.
func newGrid[K comparable](width, height, cell float64) *grid[K] {
	cols := max(1, int(math.Ceil(width/cell)))
	rows := max(1, int(math.Ceil(height/cell)))
	return &grid[K]{
		cell:  cell,
		cols:  cols,
		rows:  rows,
		cells: make([]map[K]struct{}, cols*rows),
		where: make(map[K]int),
	}
}

// cellOf returns the column and row of the point (x, y); points outside
// the room belong to the nearest edge cell.
func (g *grid[K]) cellOf(x, y float64) (col, row int) {
	col = min(max(int(math.Floor(x/g.cell)), 0), g.cols-1)
	row = min(max(int(math.Floor(y/g.cell)), 0), g.rows-1)
	return col, row
}

// move puts thing id at (x, y), adding it when it is new, and reports
// whether it changed cells (or was added).
func (g *grid[K]) move(id K, x, y float64) bool {
	col, row := g.cellOf(x, y)
	i := row*g.cols + col
	old, ok := g.where[id]
	if ok && old == i {
		return false
	}
	if ok {
		delete(g.cells[old], id)
	}
	if g.cells[i] == nil {
		g.cells[i] = make(map[K]struct{})
	}
	g.cells[i][id] = struct{}{}
	g.where[id] = i
	return true
}

// remove takes thing id out of the grid.
func (g *grid[K]) remove(id K) {
	if i, ok := g.where[id]; ok {
		delete(g.cells[i], id)
		delete(g.where, id)
	}
}

// near calls fn for each thing in the 3x3 cells around cell index i.
func (g *grid[K]) near(i int, fn func(id K)) {
	col, row := i%g.cols, i/g.cols
	for r := max(row-1, 0); r <= min(row+1, g.rows-1); r++ {
		for c := max(col-1, 0); c <= min(col+1, g.cols-1); c++ {
			for id := range g.cells[r*g.cols+c] {
				fn(id)
			}
		}
	}
}

// nearPoint calls fn for each thing in the 3x3 cells around (x, y).
func (g *grid[K]) nearPoint(x, y float64, fn func(id K)) {
	col, row := g.cellOf(x, y)
	g.near(row*g.cols+col, fn)
}
