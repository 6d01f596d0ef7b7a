package arena

import (
	"slices"
	"testing"
)

func nearIDs(g *grid[string], x, y float64) []string {
	var ids []string
	g.nearPoint(x, y, func(id string) { ids = append(ids, id) })
	slices.Sort(ids)
	return ids
}

func TestGridNear(t *testing.T) {
	g := newGrid[string](2000, 2000, 250)
	g.move("a", 1000, 1000) // cell (4, 4)
	g.move("b", 1200, 1100) // cell (4, 4)
	g.move("c", 1300, 1300) // cell (5, 5): a diagonal neighbour
	g.move("d", 1600, 1000) // cell (6, 4): two cells away
	g.move("e", 10, 10)     // cell (0, 0)
	if got, want := nearIDs(g, 1000, 1000), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("near a: %v, want %v", got, want)
	}
	if got, want := nearIDs(g, 1600, 1000), []string{"c", "d"}; !slices.Equal(got, want) {
		t.Errorf("near d: %v, want %v", got, want)
	}
	if got, want := nearIDs(g, 0, 0), []string{"e"}; !slices.Equal(got, want) {
		t.Errorf("near the corner: %v, want %v", got, want)
	}
	// The room's far edge belongs to the last cell, and beyond it too.
	g.move("f", 2000, 2000)
	if got, want := nearIDs(g, 1999, 1999), []string{"f"}; !slices.Equal(got, want) {
		t.Errorf("near the far corner: %v, want %v", got, want)
	}
}

func TestGridMoveAcrossCells(t *testing.T) {
	g := newGrid[string](2000, 2000, 250)
	g.move("a", 1000, 1000)
	g.move("d", 1600, 1000)
	if slices.Contains(nearIDs(g, 1000, 1000), "d") {
		t.Fatal("d is seen from two cells away")
	}
	if g.move("d", 1700, 1000) {
		t.Error("a move within a cell reports a change of cell")
	}
	if !g.move("d", 1499, 1000) { // into cell (5, 4): a's neighbour
		t.Error("a move across a cell boundary reports no change")
	}
	if got, want := nearIDs(g, 1000, 1000), []string{"a", "d"}; !slices.Equal(got, want) {
		t.Errorf("near a after d came closer: %v, want %v", got, want)
	}
	g.move("d", 1500, 1000) // back into cell (6, 4)
	if got, want := nearIDs(g, 1000, 1000), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("near a after d left: %v, want %v", got, want)
	}
	g.remove("a")
	if got := nearIDs(g, 1000, 1000); len(got) != 0 {
		t.Errorf("near a's cell after it was removed: %v", got)
	}
	if len(g.where) != 1 {
		t.Errorf("the grid holds %d players, want 1", len(g.where))
	}
}

// TestWorldUpdatesAreByCell checks the world's updates: each player gets
// the players of its 3x3 cells, itself included, sorted by ID.
func TestWorldUpdatesAreByCell(t *testing.T) {
	w := newWorldActor(WorldSettings{}.withDefaults(), nil)
	for _, p := range []*player{
		{id: "a", x: 1000, y: 1000},
		{id: "b", x: 1100, y: 1240},
		{id: "far", x: 100, y: 100},
	} {
		w.players[p.id] = p
		w.grid.move(p.id, p.x, p.y)
	}
	ids := func(cell int) []string {
		var ids []string
		for _, p := range w.update(cell).GetPlayers() {
			ids = append(ids, p.GetId())
		}
		return ids
	}
	if got, want := ids(w.grid.where["a"]), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("a's update: %v, want %v", got, want)
	}
	if got, want := ids(w.grid.where["far"]), []string{"far"}; !slices.Equal(got, want) {
		t.Errorf("far's update: %v, want %v", got, want)
	}
}

func TestWorldSettingsValidate(t *testing.T) {
	for _, s := range []WorldSettings{
		{Width: -1},
		{Cell: -5},
		{Tick: Duration(10)},
		{Spawn: []float64{1}},
		{Spawn: []float64{3000, 10}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	if err := (WorldSettings{Spawn: []float64{1000, 1000}}).Validate(); err != nil {
		t.Error(err)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("50ms")); err != nil || d.String() != "50ms" {
		t.Errorf("Duration 50ms: %v, %v", d, err)
	}
}
