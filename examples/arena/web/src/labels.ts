/** A rectangle on the canvas, in CSS pixels. */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** A label to place: its size, and the circle it names (centre and radius). */
export interface LabelRequest {
  w: number;
  h: number;
  cx: number;
  cy: number;
  r: number;
}

/** The gap between a circle and its label, in CSS pixels. */
const GAP = 3;

export function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/**
 * placeLabels places each label, in the order given (the most important
 * first), at the first of these spots that overlaps no label placed before
 * it: above its circle, below it, to its right, to its left, then further
 * above and below. A label that finds no free spot gets null and is not
 * drawn: a crowd shows its nearest names, never a pile of unreadable ones.
 * The first label always gets a spot (above its circle).
 */
export function placeLabels(labels: readonly LabelRequest[]): (Box | null)[] {
  const placed: Box[] = [];
  return labels.map((l, i) => {
    const above = { x: l.cx - l.w / 2, y: l.cy - l.r - GAP - l.h, w: l.w, h: l.h };
    const spots: Box[] = [
      above,
      { x: l.cx - l.w / 2, y: l.cy + l.r + GAP, w: l.w, h: l.h },
      { x: l.cx + l.r + GAP, y: l.cy - l.h / 2, w: l.w, h: l.h },
      { x: l.cx - l.r - GAP - l.w, y: l.cy - l.h / 2, w: l.w, h: l.h },
      { x: l.cx - l.w / 2, y: above.y - l.h - GAP, w: l.w, h: l.h },
      { x: l.cx - l.w / 2, y: l.cy + l.r + 2 * GAP + l.h, w: l.w, h: l.h },
    ];
    const spot = i === 0 ? above : spots.find((s) => placed.every((p) => !overlaps(s, p)));
    if (!spot) return null;
    placed.push(spot);
    return spot;
  });
}
