/** A player as drawn: its position eases towards the latest one the server sent. */
export interface Sprite {
  id: string;
  name: string;
  x: number;
  y: number;
  targetX: number;
  targetY: number;
}

/** What one frame shows. Positions are in world units. */
export interface Scene {
  /** The room's size, from arena.Join. */
  width: number;
  height: number;
  /** Pixels per world unit. */
  scale: number;
  myId: string;
  sprites: Map<string, Sprite>;
}

const GRID = 50; // world units between grid lines
const RADIUS = 12; // a player's radius, in pixels

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

/** draw paints a frame with the camera on the player's own sprite. */
export function draw(ctx: CanvasRenderingContext2D, scene: Scene): void {
  const { width: cw, height: ch } = ctx.canvas;
  const me = scene.sprites.get(scene.myId);
  const camX = me ? me.x : scene.width / 2;
  const camY = me ? me.y : scene.height / 2;
  const s = scene.scale;
  // World to screen.
  const sx = (x: number) => cw / 2 + (x - camX) * s;
  const sy = (y: number) => ch / 2 + (y - camY) * s;

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
  const x0 = Math.max(0, Math.floor((camX - cw / 2 / s) / GRID) * GRID);
  const x1 = Math.min(scene.width, camX + cw / 2 / s);
  for (let x = x0; x <= x1; x += GRID) {
    const px = Math.round(sx(x)) + 0.5;
    ctx.moveTo(px, Math.max(0, top));
    ctx.lineTo(px, Math.min(ch, bottom));
  }
  const y0 = Math.max(0, Math.floor((camY - ch / 2 / s) / GRID) * GRID);
  const y1 = Math.min(scene.height, camY + ch / 2 / s);
  for (let y = y0; y <= y1; y += GRID) {
    const py = Math.round(sy(y)) + 0.5;
    ctx.moveTo(Math.max(0, left), py);
    ctx.lineTo(Math.min(cw, right), py);
  }
  ctx.stroke();

  ctx.strokeStyle = "#4a5468";
  ctx.lineWidth = 2;
  ctx.strokeRect(left, top, right - left, bottom - top);

  // Others first, then the player on top.
  ctx.font = "13px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  for (const p of scene.sprites.values()) {
    if (p.id !== scene.myId) drawPlayer(ctx, sx(p.x), sy(p.y), p.name, false);
  }
  if (me) drawPlayer(ctx, sx(me.x), sy(me.y), me.name, true);

  // Where the player is, for orientation.
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  ctx.fillStyle = "#9aa3b5";
  ctx.fillText(`${Math.round(camX)}, ${Math.round(camY)}`, 8, 8);
}

function drawPlayer(ctx: CanvasRenderingContext2D, x: number, y: number, name: string, self: boolean): void {
  ctx.beginPath();
  ctx.arc(x, y, RADIUS, 0, Math.PI * 2);
  ctx.fillStyle = self ? "#ffd166" : hue(name);
  ctx.fill();
  ctx.lineWidth = self ? 3 : 1.5;
  ctx.strokeStyle = self ? "#ffffff" : "#0b0d11";
  ctx.stroke();
  ctx.fillStyle = self ? "#ffd166" : "#e6e8ee";
  ctx.fillText(self ? `${name} (you)` : name, x, y - RADIUS - 4);
}

/** hue gives each name its own colour, the same on every screen. */
function hue(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360} 65% 60%)`;
}
