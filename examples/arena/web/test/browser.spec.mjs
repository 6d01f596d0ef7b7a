// The arena's browser test: the built page (dist/, served by `guild demo`)
// in a real Chromium, against the real server, with a Go player beside it.
//
//   npm run test:browser          (after npm run build; from examples/arena/web)
//
// It starts `guild demo` on free ports (`go run ./cmd/guild`, or the binary
// in $GUILD_BIN; $GUILD_DEMO_ARGS adds flags, such as "-nodes 3"), opens the page in Debian's headless Chromium
// ($CHROMIUM, default /usr/bin/chromium) through playwright-core, joins as
// "webtester", starts the Go bot test/gobot ("gobot") which walks up to the
// page's player, and checks that
//   1. gobot shows up in the page's list of players in view, and moves;
//   2. a chat line typed in the page reaches the bot;
//   3. the arrow keys move the page's own player.
// It saves a screenshot (to docs/arena.png too with UPDATE_SCREENSHOT=1)
// and, with the logs, to a temp
// directory it prints. Every wait has a timeout; it exits non-zero on
// failure and stops every process it started.
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
  const child = spawn(cmd, args, { cwd: repo, detached: true, stdio: ["pipe", "pipe", "pipe"] });
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

/** players reads the page's list of players in view: [{name, x, y, self}]. */
async function players(page) {
  return page.$$eval('[data-testid="players"] li', (items) =>
    items.map((li) => ({
      name: li.dataset.name,
      x: Number(li.dataset.x),
      y: Number(li.dataset.y),
      self: li.dataset.self === "true",
      text: li.textContent,
    })),
  );
}

async function main() {
  const [httpPort, tcpPort] = [await freePort(), await freePort()];

  // 1. The server: guild demo, page and gateway on one port.
  const guild = process.env.GUILD_BIN ? [process.env.GUILD_BIN, []] : ["go", ["run", "./cmd/guild"]];
  let pageURL;
  const extra = (process.env.GUILD_DEMO_ARGS || "").split(/\s+/).filter(Boolean); // e.g. "-nodes 3"
  const demoArgs = [...guild[1], "demo", "-addr", `127.0.0.1:${httpPort}`, "-tcp", `127.0.0.1:${tcpPort}`, ...extra];
  const demo = start("demo", guild[0], demoArgs, (line) => {
    const m = line.match(/https?:\/\/[^\s"'<>]+/);
    if (m && !pageURL) pageURL = m[0];
  });
  await poll(() => pageURL || running(demo), 240_000, "guild demo's URL on stdout", 100);
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
  const page = browser.pages()[0] ?? (await browser.newPage());
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()} ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror ${e.message}`));
  await page.goto(pageURL, { waitUntil: "load", timeout: 30_000 });

  // 3. Join from the page.
  await page.getByTestId("name-input").fill(PAGE_NAME);
  await page.getByTestId("join-button").click();
  await page.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: 15_000 });
  await page.waitForSelector('[data-testid="canvas"]', { state: "visible", timeout: 15_000 });
  const me = await poll(async () => (await players(page)).find((p) => p.self), 15_000, "the page's own player in the players list");
  log(`page joined as ${PAGE_NAME} at ${me.x},${me.y}`);

  // 4. The Go bot walks to the page's player.
  const botChat = [];
  let botJoined;
  const bot = start(
    "gobot",
    "go",
    ["run", "./examples/arena/web/test/gobot", "-addr", wsURL, "-name", BOT_NAME, "-goto", `${me.x},${me.y}`, "-seek", PAGE_NAME, "-duration", "4m"],
    (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        return;
      }
      if (ev.event === "chat") botChat.push(ev);
      if (ev.event === "joined") botJoined = ev;
    },
  );
  await poll(() => botJoined || running(bot), 120_000, "gobot joining", 100);
  log(`gobot joined at ${botJoined.x},${botJoined.y}`);

  // Check 1: gobot comes into view and its position changes. From the far
  // corner of a 2000x2000 room at 200 units/s it takes about 14 s.
  const first = await poll(async () => (await players(page)).find((p) => p.name === BOT_NAME) || running(bot), 60_000, "gobot in the page's players list");
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

  // Check 2: a chat line typed in the page reaches the bot (and the page).
  const text = `hello from the browser ${Math.random().toString(36).slice(2, 8)}`;
  await page.getByTestId("chat-input").click();
  await page.getByTestId("chat-input").fill(text);
  await page.getByTestId("chat-input").press("Enter");
  const got = await poll(() => botChat.find((l) => l.text === text), 15_000, "gobot printing the page's chat line");
  if (got.from !== PAGE_NAME) throw new Error(`chat line from ${JSON.stringify(got.from)}, want ${PAGE_NAME}`);
  await page.waitForSelector(`[data-testid="chat-log"] li:has-text("${text}")`, { timeout: 10_000 });
  log(`gobot got the chat line: ${got.from}: ${got.text}`);

  // Check 3: the keys steer the page's player (Esc leaves the chat input).
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

  // The screenshot: both players, the chat line, the status.
  await page.waitForTimeout(1200);
  const shot = join(work, "arena.png");
  await page.screenshot({ path: shot, timeout: 15_000 });
  mkdirSync(join(repo, "docs"), { recursive: true });
  if (process.env.UPDATE_SCREENSHOT) {
    copyFileSync(shot, join(repo, "docs", "arena.png"));
    log(`screenshot: docs/arena.png and ${shot}`);
  } else {
    log(`screenshot: ${shot} (UPDATE_SCREENSHOT=1 also writes docs/arena.png)`);
  }
  log(`status: ${await page.getByTestId("status").textContent()}`);
  writeFileSync(join(work, "console.log"), consoleLines.join("\n") + "\n");
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
