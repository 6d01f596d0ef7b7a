// The arena's browser test: the built page (dist/, served by `guild demo`)
// in a real Chromium, against the real server, with Go players beside it.
//
//   npm run test:browser          (after npm run build; from examples/arena/web)
//
// It starts `guild demo` on free ports with a fresh -data directory (guild
// built with `go build ./cmd/guild` into its temp directory, or the binary
// in $GUILD_BIN, run directly so that stopping it waits for it to finish;
// $GUILD_DEMO_ARGS adds flags, such as "-nodes 3"), opens the page in Debian's headless Chromium
// ($CHROMIUM, default /usr/bin/chromium) through playwright-core, and checks
// that
//   1. before anything is done the page says nothing about a connection,
//      its favicon is served, and a blank name is refused on the page;
//   2. it joins as "webtester", with an empty leaderboard (or one with
//      webtester alone, when it spawned on an orb);
//   3. the Go bot test/gobot ("gobot"), which walks up to the page's player
//      and plays beside it, shows up in the list of players in view, moves
//      and scores; a second bot that walks away leaves the list once it is
//      off the canvas, and everyone listed is on the canvas;
//   4. a second tab cannot join as "WebTester" (the name is taken), and
//      says so;
//   5. a chat line typed in the page reaches the bot;
//   6. the arrow keys move the page's player, and holding the mouse on an
//      orb picks it up: the score grows, and the leaderboard shows it;
//   7. the labels on the canvas never overlap;
//   8. at a phone's width (360 px) the page does not overflow, the canvas
//      fits and the player's avatar (the canvas's centre) is on screen,
//      and a pointer held on the canvas steers;
//   9. when the server restarts (same -data), the page says so in words,
//      reconnects and joins again by itself, and the leaderboard still
//      holds its score;
//  10. no request of the page got a 404.
// It saves screenshots (to docs/arena.png too with UPDATE_SCREENSHOT=1) and,
// with the logs, to a temp directory it prints. Every wait has a timeout;
// it exits non-zero on failure and stops every process it started.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../../..");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOTAL_TIMEOUT_MS = 7 * 60_000; // the whole test, cold go builds included
const PAGE_NAME = "webtester";
const BOT_NAME = "gobot";

const work = mkdtempSync(join(tmpdir(), "arena-browser-"));
const started = []; // child processes, stopped at the end
let browser; // the persistent context

function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args);
}

/** freePort asks the kernel for a free TCP port on 127.0.0.1. */
async function freePort() {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address();
  srv.close();
  await once(srv, "close");
  return port;
}

/** withTimeout rejects when p takes longer than ms. */
function withTimeout(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Fatal, thrown by a poll's fn, ends the poll at once. */
class Fatal extends Error {}

/** poll calls fn until it returns a truthy value, or fails after ms. */
async function poll(fn, ms, what, everyMs = 200) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if (err instanceof Fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms: ${what}${last ? ` (last error: ${last.message})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * start runs a command in its own process group, so that stopping it stops
 * `go run`'s child too. Its output goes to <work>/<name>.log; onLine sees
 * each stdout line.
 */
function start(name, cmd, args, onLine) {
  log(`start ${name}: ${cmd} ${args.join(" ")}`);
  // This test's own GUILD_ variables are not for guild: guild run (the
  // nodes of -nodes 3) reads every GUILD_<PATH> as a setting of its
  // cluster file, and refuses one that matches no field.
  const env = { ...process.env };
  delete env.GUILD_BIN;
  delete env.GUILD_DEMO_ARGS;
  const child = spawn(cmd, args, { cwd: repo, env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
  const lines = [];
  const record = (stream, tag) => {
    createInterface({ input: stream }).on("line", (line) => {
      lines.push(`${tag} ${line}`);
      if (tag === "out" && onLine) onLine(line);
    });
  };
  record(child.stdout, "out");
  record(child.stderr, "err");
  const exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
  const proc = { name, child, lines, exited, done: false };
  exited.then(({ code, signal }) => {
    proc.done = true;
    log(`${name} exited: ${signal ?? code}`);
  });
  child.on("error", (err) => lines.push(`error ${err.message}`));
  started.push(proc);
  return proc;
}

/** stop sends SIGTERM to a process group, then SIGKILL after a grace period. */
async function stop(proc) {
  if (proc.done) return;
  try {
    proc.child.stdin.end();
    process.kill(-proc.child.pid, "SIGTERM");
  } catch {
    // already gone
  }
  const ok = await Promise.race([proc.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
  if (!ok) {
    try {
      process.kill(-proc.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 2000))]);
  }
}

/** running throws Fatal when proc has exited, and returns false otherwise. */
function running(proc) {
  if (proc.done) throw new Fatal(`${proc.name} exited early`);
  return false;
}

/** players reads the page's list of players in view: [{name, x, y, score, self}]. */
async function players(page) {
  return page.$$eval('[data-testid="players"] li', (items) =>
    items.map((li) => ({
      name: li.dataset.name,
      x: Number(li.dataset.x),
      y: Number(li.dataset.y),
      score: Number(li.dataset.score),
      self: li.dataset.self === "true",
      text: li.textContent,
    })),
  );
}

/** leaderboard reads the page's leaderboard: [{name, score}]. */
async function leaderboard(page) {
  return page.$$eval('[data-testid="leaderboard"] li[data-name]', (items) =>
    items.map((li) => ({ name: li.dataset.name, score: Number(li.dataset.score) })),
  );
}

/** stats reads the page's "Your stats" panel: its state and each field's value. */
async function stats(page) {
  return page.getByTestId("stats").evaluate((dl) => {
    const st = { state: dl.dataset.state };
    for (const dd of dl.querySelectorAll("dd[data-field]")) st[dd.dataset.field] = Number(dd.dataset.value ?? NaN);
    return st;
  });
}

/** canvasState reads the canvas's box, scale, orbs in view ([x, y, value]) and label boxes. */
async function canvasState(page) {
  return page.getByTestId("canvas").evaluate((c) => {
    const r = c.getBoundingClientRect();
    return {
      box: { x: r.x, y: r.y, w: r.width, h: r.height },
      scale: Number(c.dataset.scale),
      orbs: (c.dataset.orbs || "")
        .split(";")
        .filter(Boolean)
        .map((o) => o.split(",").map(Number)),
      labels: JSON.parse(c.dataset.labels || "[]"),
    };
  });
}

/** myScore reads the page's own score. */
async function myScore(page) {
  return Number(await page.getByTestId("score").getAttribute("data-score"));
}

/** status reads the page's status line and its state, at one moment. */
async function status(page) {
  return page.getByTestId("status").evaluate((el) => ({ text: el.textContent || "", state: el.dataset.state }));
}

/** botProc starts a gobot; its JSON lines go to the returned object. */
function botProc(name, args) {
  const b = { name, joined: undefined, pos: undefined, score: 0, chat: [] };
  b.proc = start(name, "go", ["run", "./examples/arena/web/test/gobot", "-name", name, ...args], (line) => {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      return;
    }
    if (ev.event === "chat") b.chat.push(ev);
    if (ev.event === "joined") b.joined = ev;
    if (ev.event === "pos") b.pos = ev;
    if (ev.event === "score") b.score = ev.score;
  });
  return b;
}

/**
 * guildBin returns $GUILD_BIN, or builds guild into the work directory
 * (not `go run`: a signal to `go run` ends it at once, before guild has
 * stopped and freed its ports and its store).
 */
async function guildBin() {
  if (process.env.GUILD_BIN) return process.env.GUILD_BIN;
  const bin = join(work, "guild");
  const build = start("go-build", "go", ["build", "-o", bin, "./cmd/guild"]);
  const { code } = await withTimeout(build.exited, 240_000, "go build ./cmd/guild");
  if (code !== 0) throw new Error(`go build ./cmd/guild: exit code ${code}`);
  return bin;
}

/** startDemo starts guild demo with args and waits for the URL it prints. */
async function startDemo(name, bin, args) {
  let url;
  const demo = start(name, bin, ["demo", ...args], (line) => {
    const m = line.match(/https?:\/\/[^\s"'<>]+/);
    if (m && !url) url = m[0];
  });
  await poll(() => url || running(demo), 240_000, "guild demo's URL on stdout", 100);
  return { demo, url };
}

const BAD_STATUS = /not connected|1006|Unavailable|DeadlineExceeded|GuildError/;

async function main() {
  const [httpPort, tcpPort] = [await freePort(), await freePort()];
  const data = join(work, "data");

  // 1. The server: guild demo, page and gateway on one port.
  const extra = (process.env.GUILD_DEMO_ARGS || "").split(/\s+/).filter(Boolean); // e.g. "-nodes 3"
  const demoArgs = ["-addr", `127.0.0.1:${httpPort}`, "-tcp", `127.0.0.1:${tcpPort}`, "-data", data, ...extra];
  const bin = await guildBin();
  let { demo, url: pageURL } = await startDemo("demo", bin, demoArgs);
  log(`page at ${pageURL}`);
  const wsURL = `ws://127.0.0.1:${httpPort}/ws`;

  // 2. The browser.
  const profile = join(work, "profile");
  mkdirSync(profile);
  browser = await withTimeout(
    chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-quic",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1180, height: 720 },
      timeout: 60_000,
    }),
    70_000,
    "launching Chromium",
  );
  browser.setDefaultTimeout(15_000);
  const notFound = [];
  browser.on("response", (r) => {
    if (r.status() === 404) notFound.push(r.url());
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()} ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror ${e.message}`));
  let sockets = 0;
  page.on("websocket", () => sockets++);
  await page.goto(pageURL, { waitUntil: "load", timeout: 30_000 });

  // Check 1: a quiet start, a favicon, a blank name refused on the page.
  const s0 = await status(page);
  if (s0.text.trim() !== "" || s0.state !== "idle") throw new Error(`the status before joining: ${JSON.stringify(s0)}`);
  const icon = await page.request.get(new URL("/favicon.ico", pageURL).href);
  if (icon.status() !== 200 || (await icon.body()).length < 100) throw new Error(`GET /favicon.ico: ${icon.status()}`);
  const svgIcon = await page.locator('link[rel="icon"]').getAttribute("href");
  if ((await page.request.get(new URL(svgIcon, pageURL).href)).status() !== 200) throw new Error(`the icon ${svgIcon} is not served`);
  await page.getByTestId("name-input").fill("   ");
  await page.getByTestId("join-button").click();
  await page.waitForSelector('[data-testid="error"]:not([hidden])', { timeout: 5_000 });
  const blank = await page.getByTestId("error").textContent();
  if (!/name/i.test(blank) || sockets !== 0) throw new Error(`a blank name: error ${JSON.stringify(blank)}, ${sockets} WebSockets opened`);
  log(`a blank name is refused: ${blank}`);

  // Check 2: join.
  await page.getByTestId("name-input").fill(PAGE_NAME);
  await page.getByTestId("join-button").click();
  await page.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: 15_000 });
  await page.waitForSelector('[data-testid="canvas"]', { state: "visible", timeout: 15_000 });
  const me = await poll(async () => (await players(page)).find((p) => p.self), 15_000, "the page's own player in the players list");
  // The leaderboard's first push (slow on a busy machine): empty, or, when
  // the player spawned on an orb and scored at once, the player alone.
  const board = await poll(
    async () => {
      if (await page.locator('[data-testid="leaderboard"] li.empty').isVisible()) return "empty";
      const entries = await leaderboard(page);
      if (entries.length > 0 && entries.every((e) => e.name === PAGE_NAME)) return `${PAGE_NAME} alone (it scored on joining)`;
      if (entries.length > 0) throw new Fatal(`the leaderboard of a fresh arena: ${JSON.stringify(entries)}`);
      return null;
    },
    15_000,
    "the leaderboard's first push",
  );
  log(`page joined as ${PAGE_NAME} at ${me.x},${me.y}; the leaderboard: ${board}`);

  // Check 3: the Go bot comes into view, moves and plays.
  const bot = botProc(BOT_NAME, ["-addr", wsURL, "-goto", `${me.x},${me.y}`, "-seek", PAGE_NAME, "-duration", "5m"]);
  await poll(() => bot.joined || running(bot.proc), 120_000, "gobot joining", 100);
  log(`gobot joined at ${bot.joined.x},${bot.joined.y}`);
  const first = await poll(async () => (await players(page)).find((p) => p.name === BOT_NAME) || running(bot.proc), 30_000, "gobot in the page's players list");
  log(`page sees gobot at ${first.x},${first.y}`);
  const xs = new Set([first.x]);
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    const g = (await players(page)).find((p) => p.name === BOT_NAME);
    if (g) xs.add(g.x);
    await page.waitForTimeout(150);
  }
  const span = Math.max(...xs) - Math.min(...xs);
  if (xs.size < 3 || span < 20) throw new Error(`gobot does not move in the page: x values ${[...xs].join(" ")}`);
  log(`gobot moves in the page: ${xs.size} x values over 3 s, span ${span}`);

  // A second bot walks off the canvas: it leaves the list of players in
  // view, and whoever is listed is on the canvas.
  const away = me.x < 1000 ? Math.min(me.x + 700, 1990) : Math.max(me.x - 700, 10);
  const far = botProc("farbot", ["-addr", wsURL, "-goto", `${away},${me.y}`, "-reach", "0", "-duration", "5m"]);
  await poll(() => far.joined || running(far.proc), 120_000, "farbot joining", 100);
  await poll(async () => (await players(page)).some((p) => p.name === "farbot") || running(far.proc), 15_000, "farbot in view");
  const c0 = await canvasState(page);
  const halfW = c0.box.w / 2 / c0.scale;
  await poll(() => (far.pos && Math.abs(far.pos.x - me.x) > halfW + 60) || running(far.proc), 30_000, "farbot walking off the canvas");
  await poll(async () => !(await players(page)).some((p) => p.name === "farbot"), 5_000, "farbot gone from the list of players in view");
  const self = (await players(page)).find((p) => p.self);
  for (const p of await players(page)) {
    if (Math.abs(p.x - self.x) * c0.scale > c0.box.w / 2 + 15 || Math.abs(p.y - self.y) * c0.scale > c0.box.h / 2 + 15) {
      throw new Error(`${p.name} at ${p.x},${p.y} is listed in view but off the canvas (me at ${self.x},${self.y})`);
    }
  }
  log(`farbot, ${Math.round(Math.abs(far.pos.x - me.x))} units away, is not listed in view`);
  await stop(far.proc);

  // Check 4: a second tab cannot take the name, whatever its case.
  const tab = await browser.newPage();
  await tab.goto(pageURL, { waitUntil: "load", timeout: 30_000 });
  await tab.getByTestId("name-input").fill("WebTester");
  await tab.getByTestId("join-button").click();
  await tab.waitForSelector('[data-testid="error"]:not([hidden])', { timeout: 15_000 });
  const taken = await tab.getByTestId("error").textContent();
  if (!/taken/.test(taken) || !(await tab.getByTestId("join-form").isVisible())) throw new Error(`a second WebTester: ${JSON.stringify(taken)}`);
  log(`a second tab's "WebTester" is refused: ${taken}`);
  await tab.close();

  // Check 5: a chat line typed in the page reaches the bot (and the page).
  const text = `hello from the browser ${Math.random().toString(36).slice(2, 8)}`;
  await page.getByTestId("chat-input").click();
  await page.getByTestId("chat-input").fill(text);
  await page.getByTestId("chat-input").press("Enter");
  const got = await poll(() => bot.chat.find((l) => l.text === text), 15_000, "gobot printing the page's chat line");
  if (got.from !== PAGE_NAME) throw new Error(`chat line from ${JSON.stringify(got.from)}, want ${PAGE_NAME}`);
  await page.waitForSelector(`[data-testid="chat-log"] li:has-text("${text}")`, { timeout: 10_000 });
  log(`gobot got the chat line: ${got.from}: ${got.text}`);

  // Check 6: the keys steer the page's player (Esc leaves the chat input)...
  await page.getByTestId("chat-input").press("Escape");
  const before = (await players(page)).find((p) => p.self);
  const dir = before.x < 1000 ? "ArrowRight" : "ArrowLeft";
  await page.keyboard.down(dir);
  await page.waitForTimeout(600);
  await page.keyboard.up(dir);
  const moved = await poll(
    async () => {
      const now = (await players(page)).find((p) => p.self);
      return now && Math.abs(now.x - before.x) >= 40 && now;
    },
    5_000,
    `the page's player moving on ${dir}`,
  );
  log(`${dir} moved the page's player from x=${before.x} to x=${moved.x}`);

  // ... and the mouse held on an orb picks it up.
  const score = await collectOrb(page);
  log(`the mouse picked up an orb: score ${score}`);
  const onBoard = await poll(
    async () => (await leaderboard(page)).find((e) => e.name === PAGE_NAME && e.score >= score),
    10_000,
    "the leaderboard showing the page's score",
  );
  log(`the leaderboard shows ${onBoard.name} with ${onBoard.score}`);
  // "Your stats" shows the player's record, synced from its grain.
  const synced = await poll(
    async () => {
      const st = await stats(page);
      return st.state === "synced" && st.orbs >= 1 && st.best >= score && st.total >= score && st.visits >= 1 && st;
    },
    10_000,
    "your stats showing the orb picked up",
  );
  log(`your stats (synced): ${JSON.stringify(synced)}`);
  await poll(() => bot.score > 0 || running(bot.proc), 90_000, "gobot scoring");
  log(`gobot scores too: ${bot.score}`);

  // Check 7: labels never overlap.
  for (let i = 0; i < 10; i++) {
    const { labels } = await canvasState(page);
    for (let a = 0; a < labels.length; a++) {
      for (let b = a + 1; b < labels.length; b++) {
        const [ax, ay, aw, ah] = labels[a];
        const [bx, by, bw, bh] = labels[b];
        if (ax < bx + bw - 1 && bx < ax + aw - 1 && ay < by + bh - 1 && by < ay + ah - 1) {
          throw new Error(`labels overlap: ${JSON.stringify(labels[a])} and ${JSON.stringify(labels[b])}`);
        }
      }
    }
    await page.waitForTimeout(250);
  }
  log("the labels do not overlap");

  // The screenshot: both players, orbs, scores, the leaderboard, the chat.
  await page.getByTestId("canvas").focus();
  await page.waitForTimeout(1000);
  const shot = join(work, "arena.png");
  await page.screenshot({ path: shot, timeout: 15_000 });
  mkdirSync(join(repo, "docs"), { recursive: true });
  if (process.env.UPDATE_SCREENSHOT) {
    copyFileSync(shot, join(repo, "docs", "arena.png"));
    log(`screenshot: docs/arena.png and ${shot}`);
  } else {
    log(`screenshot: ${shot} (UPDATE_SCREENSHOT=1 also writes docs/arena.png)`);
  }

  // Check 8: a phone's width.
  await page.setViewportSize({ width: 360, height: 740 });
  await poll(async () => (await canvasState(page)).box.w <= 360, 5_000, "the canvas shrinking to the phone's width");
  await page.waitForTimeout(300);
  const phone = await canvasState(page);
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  const avatar = { x: phone.box.x + phone.box.w / 2, y: phone.box.y + phone.box.h / 2 };
  if (scrollWidth > 360 || phone.box.x < 0 || phone.box.x + phone.box.w > 360 || avatar.y < 0 || avatar.y > 740 || !(phone.scale < 1)) {
    throw new Error(`at 360 px: page ${scrollWidth} px wide, canvas ${JSON.stringify(phone.box)} at scale ${phone.scale}, avatar at ${avatar.x},${avatar.y}`);
  }
  const p0 = (await players(page)).find((p) => p.self);
  const side = p0.x < 1000 ? 1 : -1;
  await page.mouse.move(avatar.x + side * phone.box.w * 0.4, avatar.y);
  await page.mouse.down();
  const p1 = await poll(
    async () => {
      const p = (await players(page)).find((q) => q.self);
      return p && (p.x - p0.x) * side >= 40 && p;
    },
    5_000,
    "a pointer held on the phone's canvas steering the player",
  );
  await page.mouse.up();
  await page.screenshot({ path: join(work, "arena-phone.png"), timeout: 15_000 });
  log(`at 360 px the canvas is ${Math.round(phone.box.w)}x${Math.round(phone.box.h)} (scale ${phone.scale}), the avatar at ${Math.round(avatar.x)},${Math.round(avatar.y)}; the pointer moved it from x=${p0.x} to ${p1.x}`);
  await page.setViewportSize({ width: 1180, height: 720 });

  // Check 9: the server restarts on the same -data.
  await stop(bot.proc);
  const best = (await leaderboard(page)).find((e) => e.name === PAGE_NAME).score;
  await stop(demo);
  const down = await poll(
    async () => {
      const s = await status(page);
      return s.state !== "connected" && s.text.trim() !== "" && s;
    },
    15_000,
    "the page noticing the server is gone",
  );
  if (BAD_STATUS.test(down.text) || !/reconnecting/i.test(down.text)) throw new Error(`the status with the server gone: ${JSON.stringify(down.text)}`);
  log(`with the server gone the page says: ${down.text}`);
  ({ demo } = await startDemo("demo-again", bin, demoArgs));
  await page.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: 60_000 });
  await page.waitForSelector('[data-testid="chat-log"] li.system:has-text("Reconnected")', { timeout: 15_000 });
  const after = await poll(
    async () => (await leaderboard(page)).find((e) => e.name === PAGE_NAME),
    10_000,
    "the leaderboard after the restart",
  );
  if (after.score < best) throw new Error(`the leaderboard after the restart: ${PAGE_NAME} ${after.score}, want ${best}`);
  const lines = await page.$$eval('[data-testid="chat-log"] li.system', (items) => items.map((li) => li.textContent));
  if (lines.some((l) => BAD_STATUS.test(l))) throw new Error(`the page's system lines: ${JSON.stringify(lines)}`);
  log(`after the restart the page rejoined by itself, and the leaderboard still has ${PAGE_NAME} ${after.score}`);
  // The stats subscribe again by themselves, to the record the new server
  // loaded from the store.
  const resynced = await poll(
    async () => {
      const st = await stats(page);
      return st.state === "synced" && st.best >= best && st.visits >= 2 && st;
    },
    20_000,
    "your stats after the restart",
  );
  log(`your stats after the restart: ${JSON.stringify(resynced)}`);
  log(`the page's system lines: ${JSON.stringify(lines)}`);

  // Check 10: no 404.
  if (notFound.length) throw new Error(`404s: ${notFound.join(" ")}`);
  log(`status: ${(await status(page)).text}; in view: ${(await players(page)).map((p) => p.text).join(", ")}`);
  writeFileSync(join(work, "console.log"), consoleLines.join("\n") + "\n");
}

/**
 * collectOrb holds the mouse on the orb nearest the page's player until the
 * score grows (aiming again when another player takes it first), and
 * returns the score.
 */
async function collectOrb(page) {
  const start = await myScore(page);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const me = (await players(page)).find((p) => p.self);
    const c = await canvasState(page);
    const orbs = c.orbs.map(([x, y]) => ({ x, y, d: Math.hypot(x - me.x, y - me.y) })).sort((a, b) => a.d - b.d);
    const orb = orbs[0];
    if (!orb) {
      await page.waitForTimeout(200);
      continue;
    }
    await page.mouse.move(c.box.x + c.box.w / 2 + (orb.x - me.x) * c.scale, c.box.y + c.box.h / 2 + (orb.y - me.y) * c.scale);
    await page.mouse.down();
    // At 200 units a second, with some slack.
    const until = Date.now() + (orb.d / 200) * 1000 + 1500;
    while (Date.now() < until && (await myScore(page)) === start) await page.waitForTimeout(100);
    await page.mouse.up();
    const s = await myScore(page);
    if (s > start) return s;
  }
  throw new Error("timed out after 60000 ms: the page's player picking up an orb");
}

async function cleanup(failed) {
  if (failed && browser) {
    try {
      const page = browser.pages()[0];
      if (page) await withTimeout(page.screenshot({ path: join(work, "failure.png") }), 10_000, "failure screenshot");
    } catch {
      // best effort
    }
  }
  if (browser) await withTimeout(browser.close(), 15_000, "closing Chromium").catch((e) => log(e.message));
  for (const p of started.reverse()) await stop(p);
  for (const p of started) writeFileSync(join(work, `${p.name}.log`), p.lines.join("\n") + "\n");
  if (failed) {
    for (const p of started) {
      console.error(`--- last output of ${p.name} (${join(work, `${p.name}.log`)}) ---`);
      console.error(p.lines.slice(-40).join("\n"));
    }
  }
  rmSync(join(work, "profile"), { recursive: true, force: true });
  log(`logs in ${work}`);
}

let failed = false;
const watchdog = setTimeout(() => {
  console.error(`FAIL: the test took longer than ${TOTAL_TIMEOUT_MS} ms`);
  for (const p of started) {
    try {
      process.kill(-p.child.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  process.exit(1);
}, TOTAL_TIMEOUT_MS);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    await cleanup(true);
    process.exit(1);
  });
}
try {
  await main();
  log("PASS");
} catch (err) {
  failed = true;
  console.error(`FAIL: ${err.stack || err}`);
}
await cleanup(failed);
clearTimeout(watchdog);
process.exit(failed ? 1 : 0);
