/** A heading: dx and dy in -1..1, of length at most 1, as arena.Move expects. */
export interface Heading {
  dx: number;
  dy: number;
}

const directions: Record<string, Heading> = {
  ArrowLeft: { dx: -1, dy: 0 },
  ArrowRight: { dx: 1, dy: 0 },
  ArrowUp: { dx: 0, dy: -1 },
  ArrowDown: { dx: 0, dy: 1 },
  KeyA: { dx: -1, dy: 0 },
  KeyD: { dx: 1, dy: 0 },
  KeyW: { dx: 0, dy: -1 },
  KeyS: { dx: 0, dy: 1 },
};

/**
 * Steering turns the keys held down, or a pointer held on the canvas (a
 * mouse button, a finger), into a heading. y grows downwards, as on the
 * screen and in the world. Opposite keys cancel out. While the pointer is
 * held it wins over the keys: the player heads towards it.
 */
export class Steering {
  private readonly held = new Set<string>();
  private pointer: Heading | undefined;

  /** Whether code is a steering key. */
  static handles(code: string): boolean {
    return code in directions;
  }

  /** Records a key going down or up; returns whether the heading changed. */
  set(code: string, down: boolean): boolean {
    if (!Steering.handles(code)) return false;
    return this.changes(() => {
      if (down) this.held.add(code);
      else this.held.delete(code);
    });
  }

  /**
   * Points the player at (x, y), relative to itself, in any unit (the
   * pointer's offset from the canvas's centre); within dead of it, the
   * player stops. Returns whether the heading changed (by more than a few
   * degrees: a hand is never still).
   */
  point(x: number, y: number, dead: number): boolean {
    const d = Math.hypot(x, y);
    const before = this.heading();
    this.pointer = d <= dead ? { dx: 0, dy: 0 } : { dx: x / d, dy: y / d };
    const after = this.heading();
    return Math.hypot(after.dx - before.dx, after.dy - before.dy) > 0.08;
  }

  /** Lets go of the pointer; returns whether the heading changed. */
  release(): boolean {
    return this.changes(() => (this.pointer = undefined));
  }

  /** Lets go of every key and the pointer (the window lost focus); returns whether the heading changed. */
  clear(): boolean {
    return this.changes(() => {
      this.held.clear();
      this.pointer = undefined;
    });
  }

  heading(): Heading {
    if (this.pointer) return { ...this.pointer };
    let dx = 0;
    let dy = 0;
    for (const code of this.held) {
      const d = directions[code];
      if (d) {
        dx += d.dx;
        dy += d.dy;
      }
    }
    // Diagonals are as fast as straight lines.
    const l = Math.hypot(dx, dy);
    return l === 0 ? { dx: 0, dy: 0 } : { dx: dx / l, dy: dy / l };
  }

  private changes(f: () => void): boolean {
    const before = this.heading();
    f();
    const after = this.heading();
    return before.dx !== after.dx || before.dy !== after.dy;
  }
}
