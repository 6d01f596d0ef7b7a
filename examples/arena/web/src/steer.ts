/** A heading: each of dx and dy is -1, 0 or 1, as arena.Move expects. */
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
 * Steering turns the keys held down into a heading. y grows downwards, as on
 * the screen and in the world. Opposite keys cancel out.
 */
export class Steering {
  private readonly held = new Set<string>();

  /** Whether code is a steering key. */
  static handles(code: string): boolean {
    return code in directions;
  }

  /** Records a key going down or up; returns whether the heading changed. */
  set(code: string, down: boolean): boolean {
    if (!Steering.handles(code)) return false;
    const before = this.heading();
    if (down) this.held.add(code);
    else this.held.delete(code);
    const after = this.heading();
    return before.dx !== after.dx || before.dy !== after.dy;
  }

  /** Lets go of every key (the window lost focus); returns whether the heading changed. */
  clear(): boolean {
    const { dx, dy } = this.heading();
    this.held.clear();
    return dx !== 0 || dy !== 0;
  }

  heading(): Heading {
    let dx = 0;
    let dy = 0;
    for (const code of this.held) {
      const d = directions[code];
      if (d) {
        dx += d.dx;
        dy += d.dy;
      }
    }
    return { dx: Math.sign(dx), dy: Math.sign(dy) };
  }
}
