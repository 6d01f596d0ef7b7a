import { placeLabels, type Box } from "./labels.js";

/** A player as drawn: its position eases towards the latest one the server sent. */
export interface Sprite {
  id: string;
  name: string;
  score: number;
  x: number;
  y: number;
  targetX: number;
  targetY: number;
}

/** An orb, where the server put it. */
export interface OrbSprite {
  id: number;
  x: number;
  y: number;
  value: number;
}

/** What one frame shows. Positions are in world units. */
export interface Scene {
  /** The room's size, from arena.Join. */
  width: number;
  height: number;
  myId: string;
  sprites: Map<string, Sprite>;
  orbs: Map<number, OrbSprite>;
}

/** The canvas's size in CSS pixels, and the scale of the world on it. */
export interface View {
  /** CSS pixels. */
  width: number;
  height: number;
  /** CSS pixels per world unit. */
  scale: number;
}

/** The world's width that a full-size canvas shows: 800 units. */
const FULL_WIDTH = 800;
/** The smallest scale: a phone's canvas still shows 600 of the 800 units. */
const MIN_SCALE = 0.6;

/**
 * viewOf returns the view of a canvas of cssWidth x cssHeight pixels: at
 * 800 pixels or more, one pixel per unit; narrower, the world shrinks (to
 * 0.6 at most), so that a phone still sees the players around it.
 */
export function viewOf(cssWidth: number, cssHeight: number): View {
  return { width: cssWidth, height: cssHeight, scale: Math.min(1, Math.max(MIN_SCALE, cssWidth / FULL_WIDTH)) };
}

/** The camera: the world point at the canvas's centre (the player's own sprite). */
export function camera(scene: Scene): { x: number; y: number } {
  const me = scene.sprites.get(scene.myId);
  return me ? { x: me.x, y: me.y } : { x: scene.width / 2, y: scene.height / 2 };
}

/** inView reports whether the world point (x, y) is on the canvas. */
export function inView(scene: Scene, view: View, x: number, y: number): boolean {
  const cam = camera(scene);
  return Math.abs(x - cam.x) * view.scale <= view.width / 2 && Math.abs(y - cam.y) * view.scale <= view.height / 2;
}

const GRID = 50; // world units between grid lines
const RADIUS = 12; // a player's radius, in world units
const ORB_RADIUS = 6;
const GOLD_RADIUS = 9;
const FONT = 12; // label font size, CSS pixels

/**
 * ease moves each sprite part of the way to its target: the world updates
 * 10-20 times a second, and the screen 60 times.
 */
export function ease(sprites: Map<string, Sprite>, dtMs: number): void {
  const k = 1 - Math.exp(-dtMs / 60);
  for (const s of sprites.values()) {
    s.x += (s.targetX - s.x) * k;
    s.y += (s.targetY - s.y) * k;
  }
}

/**
 * draw paints a frame with the camera on the player's own sprite. ctx's
 * canvas is view.width x view.height CSS pixels at dpr device pixels each.
 * It returns the boxes of the labels it drew.
 */
export function draw(ctx: CanvasRenderingContext2D, scene: Scene, view: View, dpr: number): Box[] {
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const { width: cw, height: ch, scale: s } = view;
  const cam = camera(scene);
  // World to screen.
  const sx = (x: number) => cw / 2 + (x - cam.x) * s;
  const sy = (y: number) => ch / 2 + (y - cam.y) * s;

  ctx.fillStyle = "#0b0d11";
  ctx.fillRect(0, 0, cw, ch);

  // The room's floor, then the grid over it, so movement shows even when
  // nobody else is in view.
  const left = sx(0);
  const top = sy(0);
  const right = sx(scene.width);
  const bottom = sy(scene.height);
  ctx.fillStyle = "#161a22";
  ctx.fillRect(left, top, right - left, bottom - top);

  ctx.strokeStyle = "#232936";
  ctx.lineWidth = 1;
  ctx.beginPath();
  const x0 = Math.max(0, Math.floor((cam.x - cw / 2 / s) / GRID) * GRID);
  const x1 = Math.min(scene.width, cam.x + cw / 2 / s);
  for (let x = x0; x <= x1; x += GRID) {
    const px = Math.round(sx(x)) + 0.5;
    ctx.moveTo(px, Math.max(0, top));
    ctx.lineTo(px, Math.min(ch, bottom));
  }
  const y0 = Math.max(0, Math.floor((cam.y - ch / 2 / s) / GRID) * GRID);
  const y1 = Math.min(scene.height, cam.y + ch / 2 / s);
  for (let y = y0; y <= y1; y += GRID) {
    const py = Math.round(sy(y)) + 0.5;
    ctx.moveTo(Math.max(0, left), py);
    ctx.lineTo(Math.min(cw, right), py);
  }
  ctx.stroke();

  ctx.strokeStyle = "#4a5468";
  ctx.lineWidth = 2;
  ctx.strokeRect(left, top, right - left, bottom - top);

  for (const o of scene.orbs.values()) drawOrb(ctx, sx(o.x), sy(o.y), o.value > 1, s);

  // Others first, then the player on top.
  const r = RADIUS * s;
  const me = scene.sprites.get(scene.myId);
  const others = [...scene.sprites.values()].filter((p) => p !== me && inView(scene, view, p.x, p.y));
  for (const p of others) drawPlayer(ctx, sx(p.x), sy(p.y), r, p.name, false);
  if (me) drawPlayer(ctx, sx(me.x), sy(me.y), r, me.name, true);

  // Labels: the player's own first, then the others nearest first, each
  // where it overlaps no label placed before it.
  others.sort((a, b) => Math.hypot(a.x - cam.x, a.y - cam.y) - Math.hypot(b.x - cam.x, b.y - cam.y));
  const named = me ? [me, ...others] : others;
  ctx.font = `${FONT}px system-ui, sans-serif`;
  const texts = named.map((p) => `${p.name}${p === me ? " (you)" : ""} · ${p.score}`);
  const boxes = placeLabels(
    named.map((p, i) => ({ w: ctx.measureText(texts[i] ?? "").width + 8, h: FONT + 6, cx: sx(p.x), cy: sy(p.y), r })),
  );
  const drawn: Box[] = [];
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  boxes.forEach((b, i) => {
    if (!b) return;
    drawn.push(b);
    ctx.fillStyle = "rgba(11, 13, 17, 0.72)";
    roundRect(ctx, b.x, b.y, b.w, b.h, 4);
    ctx.fill();
    ctx.fillStyle = named[i] === me ? "#ffd166" : "#e6e8ee";
    ctx.fillText(texts[i] ?? "", b.x + 4, b.y + b.h / 2 + 0.5);
  });

  // Where the player is, for orientation.
  ctx.textBaseline = "top";
  ctx.fillStyle = "#9aa3b5";
  ctx.fillText(`${Math.round(cam.x)}, ${Math.round(cam.y)}`, 8, 8);
  return drawn;
}

function drawPlayer(ctx: CanvasRenderingContext2D, x: number, y: number, r: number, name: string, self: boolean): void {
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.fillStyle = self ? "#ffd166" : hue(name);
  ctx.fill();
  ctx.lineWidth = self ? 3 : 1.5;
  ctx.strokeStyle = self ? "#ffffff" : "#0b0d11";
  ctx.stroke();
}

function drawOrb(ctx: CanvasRenderingContext2D, x: number, y: number, gold: boolean, s: number): void {
  const r = (gold ? GOLD_RADIUS : ORB_RADIUS) * s;
  ctx.beginPath();
  ctx.arc(x, y, r * 1.9, 0, Math.PI * 2);
  ctx.fillStyle = gold ? "rgba(255, 200, 60, 0.16)" : "rgba(94, 225, 255, 0.14)";
  ctx.fill();
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.fillStyle = gold ? "#ffc83c" : "#5ee1ff";
  ctx.fill();
}

function roundRect(ctx: CanvasRenderingContext2D, x: number, y: number, w: number, h: number, r: number): void {
  ctx.beginPath();
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}

/** hue gives each name its own colour, the same on every screen. */
export function hue(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360} 65% 60%)`;
}
