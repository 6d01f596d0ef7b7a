// The arena page: join with a name, steer with the keyboard or a pointer,
// pick up orbs, watch your stats (synced: src/stats.ts) and the
// leaderboard, chat. It talks to the gateway through @guildkit/client
// with the messages generated from examples/arena/arenapb/arena.proto.
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { connect, Code, isGuildError, type Client, type GuildError } from "@guildkit/client";
import {
  ChatLineSchema,
  JoinReplySchema,
  JoinRequestSchema,
  LeaderboardSchema,
  MoveReplySchema,
  MoveRequestSchema,
  RoundOverSchema,
  SayReplySchema,
  SayRequestSchema,
  WorldUpdateSchema,
  type ChatLine,
  type Leaderboard,
  type RoundOver,
  type WorldUpdate,
} from "./gen/examples/arena/arenapb/arena_pb.js";
import { closedMessage, connectErrorMessage, joinErrorMessage, requestErrorMessage } from "./messages.js";
import { draw, ease, inView, viewOf, type Scene, type Sprite, type View } from "./render.js";
import { StatsPanel } from "./stats.js";
import { Steering } from "./steer.js";
import "./style.css";

/** The server sends idle players away after 30 s: repeat the heading this often. */
const MOVE_EVERY_MS = 2000;
const CHAT_LINES_KEPT = 200;
/** The longest name the server takes, in bytes of UTF-8. */
const MAX_NAME_BYTES = 24;
/** How long the end of a round stays on the canvas. */
const BANNER_MS = 4000;
/** After a reconnection, how often and how long to try joining again. */
const REJOIN_EVERY_MS = 1000;
const REJOIN_TRIES = 10;

const wsURL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;

function el<T extends HTMLElement>(testid: string): T {
  const e = document.querySelector<T>(`[data-testid="${testid}"]`);
  if (!e) throw new Error(`page: no element ${testid}`);
  return e;
}

const ui = {
  status: el<HTMLParagraphElement>("status"),
  form: el<HTMLFormElement>("join-form"),
  name: el<HTMLInputElement>("name-input"),
  join: el<HTMLButtonElement>("join-button"),
  error: el<HTMLParagraphElement>("error"),
  game: document.getElementById("game") as HTMLElement,
  canvas: el<HTMLCanvasElement>("canvas"),
  banner: el<HTMLParagraphElement>("banner"),
  score: el<HTMLElement>("score"),
  best: el<HTMLElement>("best"),
  round: el<HTMLElement>("round"),
  players: el<HTMLUListElement>("players"),
  leaderboard: el<HTMLOListElement>("leaderboard"),
  chatLog: el<HTMLUListElement>("chat-log"),
  chatInput: el<HTMLInputElement>("chat-input"),
  stats: el<HTMLElement>("stats"),
};

const scene: Scene = { width: 2000, height: 2000, myId: "", sprites: new Map(), orbs: new Map() };
let view: View = viewOf(800, 600);
let dpr = 1;
const steering = new Steering();
let client: Client | undefined;
let playerName = "";
let joined = false; // in the game: the game screen shows
let resume = ""; // the last JoinReply's resume token
let score = 0;
let best = 0;
let boardVersion = -1n;
let updates = 0; // arena.World pushes in the current second
let updatesPerSec = 0;
let lost = ""; // why the connection is down, while it is
let bannerTimer: ReturnType<typeof setTimeout> | undefined;
// The player's record, synced: the best round score it shows goes to the HUD too.
const stats = new StatsPanel(ui.stats, (b) => setScore(score, b));

// ---- the canvas's size ----

/** fit sizes the canvas's pixels to its box (CSS sizes it: full width on a phone). */
function fit(): void {
  const rect = ui.canvas.getBoundingClientRect();
  const w = Math.max(1, Math.round(rect.width));
  const h = Math.max(1, Math.round(rect.height));
  dpr = window.devicePixelRatio || 1;
  view = viewOf(w, h);
  ui.canvas.width = Math.round(w * dpr);
  ui.canvas.height = Math.round(h * dpr);
  ui.canvas.dataset.scale = String(view.scale);
}
new ResizeObserver(fit).observe(ui.canvas);

// ---- joining ----

ui.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = ui.name.value.trim();
  if (name === "") {
    showError("Please type a name first.");
    ui.name.focus();
    return;
  }
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) {
    showError(`That name is too long: at most ${MAX_NAME_BYTES} bytes (fewer with accents or emoji).`);
    return;
  }
  void start(name);
});
ui.name.addEventListener("input", () => {
  ui.error.hidden = true;
});

function showError(text: string): void {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

async function start(name: string): Promise<void> {
  ui.join.disabled = true;
  ui.error.hidden = true;
  try {
    if (!client?.connected) {
      setStatus("connecting", "Connecting…");
      try {
        await open();
      } catch {
        setStatus("idle", "");
        showError(connectErrorMessage(wsURL));
        return;
      }
    }
    setStatus("connecting", "Joining…");
    await join(name);
    joined = true;
    ui.form.hidden = true;
    ui.game.hidden = false;
    fit();
    ui.canvas.focus();
    addSystemLine(`You joined as ${name}. Pick up the orbs!`);
    renderStatus();
    // The record of the name joined; it subscribes again by itself after a
    // reconnection. A failure is logged, and the game goes on without it.
    if (client) void stats.watch(client);
  } catch (err) {
    setStatus("idle", "");
    showError(joinErrorMessage(err));
    ui.name.focus();
  } finally {
    ui.join.disabled = false;
  }
}

/** open connects the client, once: it then reconnects by itself. */
async function open(): Promise<void> {
  if (client) {
    // A client that gave up reconnecting: start a new one.
    void client.close();
    client = undefined;
  }
  const c = await connect({
    url: wsURL,
    clientName: "arena-web/0.2",
    reconnect: true,
    onConnect: () => {
      // Each reconnection is a new session that has not joined: join again,
      // as the same player if the world still has it.
      if (joined && c === client) void rejoin();
    },
    onClose: (err) => {
      if (c !== client || (err === undefined && c.closed)) return; // we closed it
      const again = lost === "";
      lost = closedMessage(err, !c.closed);
      if (joined && again) addSystemLine(lost);
      renderStatus();
    },
    onError: (err) => console.error("arena:", err),
  });
  client = c;
  c.onPush("arena.World", WorldUpdateSchema, onWorld);
  c.onPush("arena.Board", LeaderboardSchema, setBoard);
  c.onPush("arena.Round", RoundOverSchema, onRoundOver);
  c.onPush("chat.Line", ChatLineSchema, onChatLine);
}

async function join(name: string): Promise<string> {
  if (!client) throw new Error("not connected");
  const reply = await client.request("arena.Join", JoinRequestSchema, { name, resume }, JoinReplySchema);
  const before = scene.myId;
  playerName = name;
  resume = reply.resume;
  scene.myId = reply.playerId;
  scene.width = reply.width || scene.width;
  scene.height = reply.height || scene.height;
  scene.sprites.clear();
  scene.orbs.clear();
  ui.players.replaceChildren(); // until the first update of this session
  scene.sprites.set(reply.playerId, {
    id: reply.playerId,
    name,
    score: reply.score,
    x: reply.x,
    y: reply.y,
    targetX: reply.x,
    targetY: reply.y,
  });
  best = 0;
  setScore(reply.score, reply.best);
  renderRound(reply.round, reply.roundLeftMs);
  // The join's leaderboard is the server's: it wins over any older push,
  // whatever its version (a server that restarted without its store).
  boardVersion = -1n;
  setBoard(reply.leaderboard ?? create(LeaderboardSchema));
  lost = "";
  sendMove(); // the heading held while reconnecting, if any
  return before;
}

/** rejoin joins again after a reconnection, trying for a while if refused. */
async function rejoin(): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      const before = await join(playerName);
      addSystemLine(
        before === scene.myId
          ? "Reconnected: you are back where you were."
          : "Reconnected. The server had restarted: a new round for you, and your best is kept.",
      );
      renderStatus();
      return;
    } catch (err) {
      // The old session may still hold the name for a moment.
      if (!client?.connected || !isGuildError(err) || i >= REJOIN_TRIES || !retryable(err)) {
        if (client?.connected) leaveGame(joinErrorMessage(err));
        return;
      }
      setStatus("connecting", "Reconnected; joining again…");
      await new Promise((r) => setTimeout(r, REJOIN_EVERY_MS));
    }
  }
}

function retryable(err: GuildError): boolean {
  return err.code === Code.AlreadyExists || err.code === Code.Unavailable || err.code === Code.DeadlineExceeded;
}

/** leaveGame shows the join form again, with why. */
function leaveGame(why: string): void {
  joined = false;
  ui.game.hidden = true;
  ui.form.hidden = false;
  showError(why);
  setStatus("idle", "");
}

// Leaving the page leaves the game at once, instead of after the world's
// idle timeout.
window.addEventListener("pagehide", () => {
  if (!client) return;
  const c = client;
  client = undefined;
  joined = false;
  c.request("arena.Leave", EmptySchema, {}, EmptySchema, { timeoutMs: 500 })
    .catch(() => {})
    .finally(() => void c.close());
});
// A page restored from the back-forward cache has left: start afresh.
window.addEventListener("pageshow", (ev) => {
  if (ev.persisted) location.reload();
});

// ---- the world ----

function onWorld(w: WorldUpdate): void {
  updates++;
  const seen = new Set<string>();
  for (const p of w.players) {
    seen.add(p.id);
    const s: Sprite | undefined = scene.sprites.get(p.id);
    if (s) {
      s.name = p.name;
      s.score = p.score;
      s.targetX = p.x;
      s.targetY = p.y;
    } else {
      scene.sprites.set(p.id, { id: p.id, name: p.name, score: p.score, x: p.x, y: p.y, targetX: p.x, targetY: p.y });
    }
    if (p.id === scene.myId) setScore(p.score, best);
  }
  for (const id of scene.sprites.keys()) {
    if (!seen.has(id)) scene.sprites.delete(id);
  }
  scene.orbs.clear();
  for (const o of w.orbs) scene.orbs.set(o.id, { id: o.id, x: o.x, y: o.y, value: o.value });
  renderRound(w.round, w.roundLeftMs);
  renderInView(w);
}

/**
 * renderInView lists the players on the canvas as "name score", the
 * server's positions rounded in data attributes; and, on the canvas, the
 * orbs on it (for the browser test).
 */
function renderInView(w: WorldUpdate): void {
  const items = w.players
    .filter((p) => inView(scene, view, p.x, p.y))
    .sort((a, b) => b.score - a.score || a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
    .map((p) => {
      const li = document.createElement("li");
      const x = Math.round(p.x);
      const y = Math.round(p.y);
      const name = document.createElement("span");
      name.textContent = p.id === scene.myId ? `${p.name} (you)` : p.name;
      const pts = document.createElement("span");
      pts.className = "pts";
      pts.textContent = String(p.score);
      li.append(name, pts);
      li.title = `at ${x}, ${y}`;
      li.dataset.id = p.id;
      li.dataset.name = p.name;
      li.dataset.x = String(x);
      li.dataset.y = String(y);
      li.dataset.score = String(p.score);
      li.dataset.self = String(p.id === scene.myId);
      return li;
    });
  ui.players.replaceChildren(...items);
  ui.players.dataset.tick = String(w.tick);
  ui.canvas.dataset.orbs = w.orbs
    .filter((o) => inView(scene, view, o.x, o.y))
    .map((o) => `${Math.round(o.x)},${Math.round(o.y)},${o.value}`)
    .join(";");
}

function setScore(s: number, b: number): void {
  if (s > score) {
    ui.score.classList.remove("bump");
    void ui.score.offsetWidth; // restart the animation
    ui.score.classList.add("bump");
  }
  score = s;
  best = Math.max(b, s, best);
  ui.score.textContent = String(score);
  ui.score.dataset.score = String(score);
  ui.best.textContent = String(best);
  ui.best.dataset.best = String(best);
}

function renderRound(round: number, leftMs: number): void {
  const secs = Math.ceil(leftMs / 1000);
  ui.round.textContent = `Round ${round} · ${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")} left`;
  ui.round.dataset.round = String(round);
}

function setBoard(b: Leaderboard): void {
  if (b.version < boardVersion) return;
  boardVersion = b.version;
  const mine = playerName.toLowerCase();
  const items = b.entries.map((e) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = e.name;
    const pts = document.createElement("span");
    pts.className = "pts";
    pts.textContent = String(e.score);
    li.append(name, pts);
    li.title = e.unixMs ? `on ${new Date(Number(e.unixMs)).toLocaleString()}` : "";
    li.dataset.name = e.name;
    li.dataset.score = String(e.score);
    li.dataset.self = String(e.name.toLowerCase() === mine);
    return li;
  });
  if (items.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No scores yet: be the first!";
    items.push(li);
  }
  ui.leaderboard.replaceChildren(...items);
}

function onRoundOver(r: RoundOver): void {
  const [first] = r.top;
  const text = first
    ? `Round ${r.round} is over: ${first.name} wins with ${first.score}!`
    : `Round ${r.round} is over: nobody scored.`;
  ui.banner.textContent = text;
  ui.banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => (ui.banner.hidden = true), BANNER_MS);
  const podium = r.top.map((p, i) => `${i + 1}. ${p.name} ${p.score}`).join(", ");
  addSystemLine(`${text}${r.top.length > 1 ? ` (${podium})` : ""} Round ${r.next} starts.`);
  setScore(0, best);
}

let lastFrame = performance.now();
let lastLabels = 0;
function frame(now: number): void {
  ease(scene.sprites, now - lastFrame);
  lastFrame = now;
  const ctx = ui.canvas.getContext("2d");
  if (ctx && joined) {
    const labels = draw(ctx, scene, view, dpr);
    if (now - lastLabels > 250) {
      // Where the labels are, for the browser test.
      lastLabels = now;
      ui.canvas.dataset.labels = JSON.stringify(labels.map((b) => [b.x, b.y, b.w, b.h].map(Math.round)));
    }
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// ---- steering ----

function sendMove(): void {
  if (!client?.connected || !joined) return;
  client.request("arena.Move", MoveRequestSchema, steering.heading(), MoveReplySchema).catch((err: unknown) => {
    // A move lost while the connection drops is sent again on rejoining.
    if (client?.connected) console.warn("arena: move:", requestErrorMessage(err));
  });
}

function typing(ev: KeyboardEvent): boolean {
  return ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
}

window.addEventListener("keydown", (ev) => {
  if (!joined || typing(ev) || !Steering.handles(ev.code)) return;
  ev.preventDefault(); // no scrolling with the arrow keys
  if (!ev.repeat && steering.set(ev.code, true)) sendMove();
});
window.addEventListener("keyup", (ev) => {
  if (!joined || !Steering.handles(ev.code)) return;
  if (steering.set(ev.code, false)) sendMove();
});
window.addEventListener("blur", () => {
  if (steering.clear()) sendMove();
});

// A pointer held on the canvas (a mouse button, a finger) steers towards
// itself: the player is at the canvas's centre.
let pointerId: number | undefined;
function pointAt(ev: PointerEvent): void {
  const r = ui.canvas.getBoundingClientRect();
  if (steering.point(ev.clientX - r.left - r.width / 2, ev.clientY - r.top - r.height / 2, 10)) sendMove();
}
ui.canvas.addEventListener("pointerdown", (ev) => {
  ui.canvas.focus();
  pointerId = ev.pointerId;
  ui.canvas.setPointerCapture(ev.pointerId);
  pointAt(ev);
});
ui.canvas.addEventListener("pointermove", (ev) => {
  if (ev.pointerId === pointerId) pointAt(ev);
});
for (const type of ["pointerup", "pointercancel"] as const) {
  ui.canvas.addEventListener(type, (ev) => {
    if (ev.pointerId !== pointerId) return;
    pointerId = undefined;
    if (steering.release()) sendMove();
  });
}

// The heading again every 2 s, changed or not: it keeps the player in the game.
setInterval(sendMove, MOVE_EVERY_MS);

// ---- chat ----

ui.chatInput.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") {
    ui.canvas.focus();
    return;
  }
  if (ev.key !== "Enter" || ev.isComposing) return;
  ev.preventDefault();
  const text = ui.chatInput.value.trim();
  if (text === "" || !client) return;
  client
    .request("chat.Say", SayRequestSchema, { text }, SayReplySchema)
    .then(() => {
      if (ui.chatInput.value.trim() === text) ui.chatInput.value = "";
    })
    .catch((err: unknown) => addSystemLine(`Not sent: ${requestErrorMessage(err)}.`));
});

// Enter on the canvas jumps to the chat input.
ui.canvas.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter") {
    ev.preventDefault();
    ui.chatInput.focus();
  }
});

function onChatLine(line: ChatLine): void {
  const li = document.createElement("li");
  const when = new Date(Number(line.unixMs) || Date.now());
  li.title = when.toLocaleTimeString();
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = `${line.from}: `;
  li.append(from, line.text);
  li.dataset.from = line.from;
  appendChat(li);
}

function addSystemLine(text: string): void {
  const li = document.createElement("li");
  li.className = "system";
  li.textContent = text;
  appendChat(li);
}

function appendChat(li: HTMLLIElement): void {
  const log = ui.chatLog;
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(li);
  while (log.children.length > CHAT_LINES_KEPT) log.firstElementChild?.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

// ---- status ----

setInterval(() => {
  updatesPerSec = updates;
  updates = 0;
  renderStatus();
}, 1000);

function renderStatus(): void {
  if (!client || !joined) return;
  if (!client.connected || lost !== "") {
    setStatus(client.closed ? "error" : "connecting", lost || "Reconnecting…");
    return;
  }
  const inView = ui.players.children.length;
  setStatus(
    "connected",
    `Connected · ${inView} player${inView === 1 ? "" : "s"} in view · ${updatesPerSec} updates/s`,
    `session ${client.sessionId}`,
  );
}

function setStatus(state: string, text: string, title = ""): void {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  ui.status.title = title;
}
