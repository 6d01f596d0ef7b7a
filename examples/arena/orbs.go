package arena

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// PickupRadius is how close a player's centre must come to an orb's to
// pick it up, in world units: the radius of an avatar and of an orb
// together, as the page draws them.
const PickupRadius = 28.0

// Orb values: most orbs are worth one point, one in goldEvery is a gold
// orb worth goldValue.
const (
	goldEvery = 10
	goldValue = 5
)

// Where the world scatters an orb: half of them anywhere in the room, the
// others orbNear to orbFar from a player picked at random, so that there
// is always something to pick up in view.
const (
	orbNear   = 100.0
	orbFar    = 350.0
	orbMargin = 20.0
)

// orb is one orb, owned by the world actor.
type orb struct {
	id      uint32
	x, y    float64
	value   uint32
	expires time.Time // when it makes way for a new one
}

// pickup is an orb's value going to a player.
type pickup struct {
	player string
	value  uint32
}

// fillOrbs scatters orbs until the room holds WorldSettings.Orbs, each
// to last about WorldSettings.OrbLife from now.
func (w *worldActor) fillOrbs(now time.Time) {
	life := float64(w.s.OrbLife)
	for len(w.orbs) < w.s.Orbs {
		w.nextOrb++
		o := &orb{id: w.nextOrb, value: 1, expires: now.Add(time.Duration(life * (0.5 + w.rand.Float64())))}
		if w.rand.IntN(goldEvery) == 0 {
			o.value = goldValue
		}
		o.x, o.y = w.orbPoint()
		w.addOrb(o)
	}
}

// expireOrbs takes out the orbs whose time is up at now.
func (w *worldActor) expireOrbs(now time.Time) {
	for id, o := range w.orbs {
		if !now.Before(o.expires) {
			delete(w.orbs, id)
			w.orbGrid.remove(id)
		}
	}
}

// addOrb puts o in the room.
func (w *worldActor) addOrb(o *orb) {
	w.orbs[o.id] = o
	w.orbGrid.move(o.id, o.x, o.y)
}

// orbPoint picks where the next orb goes.
func (w *worldActor) orbPoint() (x, y float64) {
	if len(w.players) > 0 && w.rand.IntN(2) == 0 {
		k := w.rand.IntN(len(w.players))
		for _, p := range w.players {
			if k--; k < 0 {
				a := w.rand.Float64() * 2 * math.Pi
				r := orbNear + w.rand.Float64()*(orbFar-orbNear)
				return w.clamp(p.x+r*math.Cos(a), p.y+r*math.Sin(a), orbMargin)
			}
		}
	}
	return w.clamp(w.rand.Float64()*w.s.Width, w.rand.Float64()*w.s.Height, orbMargin)
}

// pickups hands out the orbs that players touch: each goes to the
// player whose centre is closest to it, within PickupRadius (of two at
// the same distance, the one with the smaller ID), who scores its value.
// It removes those orbs and returns who got what, in orb order.
func (w *worldActor) pickups() []pickup {
	var got []pickup
	ids := make([]uint32, 0, len(w.orbs))
	for id := range w.orbs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		o := w.orbs[id]
		best, bestD := "", math.Inf(1)
		w.grid.nearPoint(o.x, o.y, func(pid string) {
			p := w.players[pid]
			d := math.Hypot(p.x-o.x, p.y-o.y)
			if d <= PickupRadius && (d < bestD || d == bestD && cmp.Less(pid, best)) {
				best, bestD = pid, d
			}
		})
		if best == "" {
			continue
		}
		w.players[best].score += o.value
		got = append(got, pickup{player: best, value: o.value})
		delete(w.orbs, id)
		w.orbGrid.remove(id)
	}
	return got
}
