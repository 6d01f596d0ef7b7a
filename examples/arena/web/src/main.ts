// The arena page: join with a name, steer with the keyboard, chat. It talks
// to the gateway through @guildkit/client with the messages generated from
// examples/arena/arenapb/arena.proto.
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { connect, isGuildError, type Client } from "@guildkit/client";
import {
  ChatLineSchema,
  JoinReplySchema,
  JoinRequestSchema,
  MoveReplySchema,
  MoveRequestSchema,
  SayReplySchema,
  SayRequestSchema,
  WorldUpdateSchema,
  type ChatLine,
  type WorldUpdate,
} from "./gen/examples/arena/arenapb/arena_pb.js";
import { draw, ease, type Scene, type Sprite } from "./render.js";
import { Steering } from "./steer.js";
import "./style.css";

/** The server sends idle players away after 30 s: repeat the heading this often. */
const MOVE_EVERY_MS = 2000;
const CHAT_LINES_KEPT = 200;

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
  players: el<HTMLUListElement>("players"),
  chatLog: el<HTMLUListElement>("chat-log"),
  chatInput: el<HTMLInputElement>("chat-input"),
};

const scene: Scene = { width: 1000, height: 1000, scale: 1, myId: "", sprites: new Map() };
const steering = new Steering();
let client: Client | undefined;
let playerName = "";
let joined = false;
let updates = 0; // arena.World pushes in the current second
let updatesPerSec = 0;
let lastError = "";

// ---- joining ----

ui.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = ui.name.value.trim();
  if (name === "") return;
  void start(name);
});

async function start(name: string): Promise<void> {
  ui.join.disabled = true;
  ui.error.hidden = true;
  setStatus("connecting", `connecting to ${wsURL}…`);
  try {
    playerName = name;
    client = await connect({
      url: wsURL,
      clientName: "arena-web/0.1",
      reconnect: true,
      onConnect: () => {
        // Each reconnection is a new session that has not joined: join again.
        if (joined) void join().catch(fail);
      },
      onClose: (err) => {
        if (err) lastError = `${err.codeName}: ${err.message}`;
        renderStatus();
      },
      onError: (err) => console.error("arena:", err),
    });
    client.onPush("arena.World", WorldUpdateSchema, onWorld);
    client.onPush("chat.Line", ChatLineSchema, onChatLine);
    await join();
    joined = true;
    ui.form.hidden = true;
    ui.game.hidden = false;
    ui.canvas.focus();
    addSystemLine(`joined as ${name}`);
  } catch (err) {
    void client?.close();
    client = undefined;
    ui.join.disabled = false;
    ui.error.textContent = `Could not join: ${describe(err)}`;
    ui.error.hidden = false;
    setStatus("error", `not connected: ${describe(err)}`);
  }
}

async function join(): Promise<void> {
  if (!client) return;
  const reply = await client.request("arena.Join", JoinRequestSchema, { name: playerName }, JoinReplySchema);
  scene.myId = reply.playerId;
  scene.width = reply.width || scene.width;
  scene.height = reply.height || scene.height;
  scene.sprites.clear();
  scene.sprites.set(reply.playerId, {
    id: reply.playerId,
    name: playerName,
    x: reply.x,
    y: reply.y,
    targetX: reply.x,
    targetY: reply.y,
  });
  lastError = "";
  sendMove(); // the heading held while reconnecting, if any
  renderStatus();
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
      s.targetX = p.x;
      s.targetY = p.y;
    } else {
      scene.sprites.set(p.id, { id: p.id, name: p.name, x: p.x, y: p.y, targetX: p.x, targetY: p.y });
    }
  }
  for (const id of scene.sprites.keys()) {
    if (!seen.has(id)) scene.sprites.delete(id);
  }
  renderPlayers(w);
}

/** renderPlayers lists the players in view as "name x,y", the server's positions rounded. */
function renderPlayers(w: WorldUpdate): void {
  const items = [...w.players]
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
    .map((p) => {
      const li = document.createElement("li");
      const x = Math.round(p.x);
      const y = Math.round(p.y);
      li.textContent = `${p.name} ${x},${y}`;
      li.dataset.id = p.id;
      li.dataset.name = p.name;
      li.dataset.x = String(x);
      li.dataset.y = String(y);
      li.dataset.self = String(p.id === scene.myId);
      return li;
    });
  ui.players.replaceChildren(...items);
  ui.players.dataset.tick = String(w.tick);
}

let lastFrame = performance.now();
function frame(now: number): void {
  ease(scene.sprites, now - lastFrame);
  lastFrame = now;
  const ctx = ui.canvas.getContext("2d");
  if (ctx && joined) draw(ctx, scene);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// ---- steering ----

function sendMove(): void {
  if (!client?.connected || !joined) return;
  const { dx, dy } = steering.heading();
  client.request("arena.Move", MoveRequestSchema, { dx, dy }, MoveReplySchema).catch(fail);
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
    .catch((err: unknown) => addSystemLine(`not sent: ${describe(err)}`));
});

// Enter on the canvas jumps to the chat input.
ui.canvas.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter") {
    ev.preventDefault();
    ui.chatInput.focus();
  }
});
ui.canvas.addEventListener("pointerdown", () => ui.canvas.focus());

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
  if (!client) return;
  if (!client.connected) {
    const why = lastError ? ` (${lastError})` : "";
    setStatus(client.closed ? "error" : "connecting", `disconnected${why}${client.closed ? "" : ", reconnecting…"}`);
    return;
  }
  const inView = scene.sprites.size;
  setStatus(
    "connected",
    `connected · session ${client.sessionId} · ${inView} player${inView === 1 ? "" : "s"} in view · ${updatesPerSec} updates/s` +
      (lastError ? ` · ${lastError}` : ""),
  );
}

function setStatus(state: string, text: string): void {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function fail(err: unknown): void {
  lastError = describe(err);
  renderStatus();
}

function describe(err: unknown): string {
  if (isGuildError(err)) return `${err.codeName} (${err.code}): ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
