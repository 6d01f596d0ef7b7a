package timer_test

import (
	"fmt"

	"github.com/guildkit/guild/timer"
)

func ExampleWheel() {
	w := timer.New()

	// Callbacks run while Advance processes the tick they are due on;
	// inside a callback for tick T, Now() reports T+1.
	w.After(3, func() { fmt.Println("After(3) ran; now", w.Now()) })
	w.At(1, func() { fmt.Println("At(1) ran; now", w.Now()) })
	w.After(3, func() { fmt.Println("second After(3) ran; same tick, scheduling order") })
	cancelled := w.After(2, func() { fmt.Println("never printed") })
	fmt.Println("stopped:", cancelled.Stop())

	fmt.Println("pending:", w.Len())
	fmt.Println("Advance(2) ran", w.Advance(2))
	fmt.Println("Advance(1) ran", w.Advance(1))
	fmt.Println("now", w.Now(), "pending", w.Len())

	// With nothing pending the wheel jumps straight to the target.
	w.AdvanceTo(1 << 40)
	fmt.Println("now", w.Now())

	// Output:
	// stopped: true
	// pending: 3
	// At(1) ran; now 2
	// Advance(2) ran 1
	// After(3) ran; now 3
	// second After(3) ran; same tick, scheduling order
	// Advance(1) ran 2
	// now 3 pending 0
	// now 1099511627776
}

func ExampleWheel_Every() {
	w := timer.New()

	var t *timer.Timer
	runs := 0
	t = w.Every(2, 5, func() {
		runs++
		fmt.Println("run", runs, "on tick", w.Now()-1)
		if runs == 3 {
			t.Stop() // a periodic timer may stop itself
		}
	})

	w.Advance(100)
	fmt.Println("pending:", t.Pending(), w.Len())

	// Output:
	// run 1 on tick 1
	// run 2 on tick 6
	// run 3 on tick 11
	// pending: false 0
}
