// The admin dashboard's browser test: the built page (dist/, embedded in
// package admin) in a real Chromium, against `guild demo -nodes 3` with
// bots playing.
//
//   npm run test:browser          (after npm run build; from admin/web)
//
// It builds guild into a temp directory (or runs $GUILD_BIN), starts
// `guild demo -nodes 3` on free ports with a fresh -data directory and
// 20 bots (`guild bot`), opens the dashboard in Debian's headless Chromium
// ($CHROMIUM, default /usr/bin/chromium) through playwright-core, and
// checks that
//   1. the page asks for the token (the API answers 401 without it), and
//      with the token the demo printed it goes live;
//   2. it lists three members, all available;
//   3. the message rate is above zero and changes between two readings
//      (the chart updates every second from Server-Sent Events);
//   4. "reload" on the gateway node answers that it has nothing to
//      reload (the demo has no tables or hot-fix modules);
//   5. "mark unavailable" on the chat node makes it unavailable in the
//      real `guild status` of the demo's cluster file;
//   6. "drain" on the chat node stops it (the demo goes on), and
//      `guild status` lists it down; the page shows it gone;
//   7. no request of the page failed with a 404.
// It saves screenshots (to docs/admin.png too with UPDATE_SCREENSHOT=1)
// and the logs in a temp directory it prints. Every wait has a timeout;
// it exits non-zero on failure and stops every process it started.
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../..");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOTAL_TIMEOUT_MS = 8 * 60_000; // cold go builds included
const work = mkdtempSync(join(tmpdir(), "admin-browser-"));
const started = [];
let browser;

function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args);
}

async function freePort() {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address();
  srv.close();
  await once(srv, "close");
  return port;
}

/** poll calls fn until it returns a truthy value or ms pass. */
async function poll(what, ms, fn) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}${last ? ` (${last.message})` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** childEnv is this process's environment without GUILD_ variables of
 * this test (the nodes would read GUILD_BIN as a cluster-file override). */
function childEnv() {
  const env = { ...process.env };
  delete env.GUILD_BIN;
  return env;
}

/** start runs a process, its output to a log file; lines go to onLine. */
function start(name, cmd, args, onLine) {
  const p = spawn(cmd, args, { cwd: repo, env: childEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  started.push(p);
  const out = [];
  for (const s of [p.stdout, p.stderr]) {
    createInterface({ input: s }).on("line", (line) => {
      out.push(line);
      onLine?.(line);
    });
  }
  p.on("exit", () => writeFileSync(join(work, `${name}.log`), out.join("\n")));
  return p;
}

async function stopAll() {
  for (const p of started.reverse()) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    try {
      process.kill(-p.pid, "SIGINT");
    } catch {}
    const exited = once(p, "exit");
    const killed = new Promise((r) => setTimeout(r, 15_000)).then(() => {
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {}
    });
    await Promise.race([exited, killed]);
  }
}

async function guildStatus(bin, file) {
  const { stdout } = await promisify(execFile)(bin, ["status", "-c", file], { cwd: repo, env: childEnv(), timeout: 30_000 });
  const rows = {};
  for (const line of stdout.trim().split("\n").slice(1)) {
    const [name, addr, , , available] = line.trim().split(/\s+/);
    rows[name] = { addr, available, line };
  }
  return rows;
}

async function main() {
  let bin = process.env.GUILD_BIN;
  if (!bin) {
    bin = join(work, "guild");
    log("building guild");
    await promisify(execFile)("go", ["build", "-o", bin, "./cmd/guild"], { cwd: repo, timeout: 5 * 60_000 });
  }
  const [page, tcp, adminPort] = [await freePort(), await freePort(), await freePort()];
  let adminURL, token, clusterFile;
  const ready = new Promise((resolveReady) => {
    start("demo", bin, ["demo", "-nodes", "3", "-addr", `127.0.0.1:${page}`, "-tcp", `127.0.0.1:${tcp}`, "-mqtt", "-", "-admin", `127.0.0.1:${adminPort}`, "-data", join(work, "data")], (line) => {
      const a = line.match(/the admin dashboard: (\S+) \(its token, for the actions: (\S+)\)/);
      if (a) [, adminURL, token] = a;
      const c = line.match(/run -c (\S+) --node/);
      if (c) clusterFile = c[1];
      if (line.startsWith("Press Ctrl-C")) resolveReady();
    });
  });
  log("starting guild demo -nodes 3");
  await Promise.race([ready, new Promise((_, rej) => setTimeout(() => rej(new Error("the demo is not ready after 3 minutes")), 180_000))]);
  if (!adminURL || !token || !clusterFile) throw new Error(`the demo did not print its dashboard, token and cluster file (${adminURL}, ${token}, ${clusterFile})`);
  log("dashboard", adminURL, "cluster file", clusterFile);
  start("bots", bin, ["bot", "-addr", `tcp://127.0.0.1:${tcp}`, "-scenario", "examples/arena/bots.yaml", "-n", "20", "-duration", "10m"]);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const tab = await ctx.newPage();
  const notFound = [];
  tab.on("response", (r) => {
    if (r.status() === 404) notFound.push(r.url());
  });
  tab.on("dialog", (d) => d.accept());
  tab.on("console", (m) => log("page:", m.text()));
  await tab.goto(adminURL);

  // 1. The token.
  await tab.waitForSelector("#token-form:not([hidden])", { timeout: 15_000 });
  await tab.fill("#token-input", token);
  await tab.click("#token-form button[type=submit]");
  await tab.waitForSelector("#status.live", { timeout: 15_000 });
  log("live");

  // 2. Three members, available.
  await poll("three members, all available", 30_000, async () => {
    const rows = await tab.$$eval("#members tbody tr", (trs) => trs.map((tr) => ({ addr: tr.dataset.addr, available: tr.querySelector("td.available")?.textContent })));
    return rows.length === 3 && rows.every((r) => r.available === "yes");
  });
  log("three members");

  // 3. The message rate: above zero, and it changes.
  const rate = () => tab.$$eval("#members tbody tr td.msg-rate", (tds) => tds.reduce((s, td) => s + (parseFloat(td.textContent) || 0), 0));
  const first = await poll("a message rate above zero", 30_000, async () => {
    const r = await rate();
    return r > 0 ? r : 0;
  });
  const second = await poll("the message rate to change", 15_000, async () => {
    const r = await rate();
    return r !== first && r > 0 ? r : 0;
  });
  log("message rate", first, "then", second);
  await new Promise((r) => setTimeout(r, 3000)); // a few points on the chart for the picture
  const shot = join(work, "admin.png");
  await tab.screenshot({ path: shot, fullPage: true });
  if (process.env.UPDATE_SCREENSHOT === "1") {
    mkdirSync(join(repo, "docs"), { recursive: true });
    copyFileSync(shot, join(repo, "docs", "admin.png"));
    log("wrote docs/admin.png");
  }

  // 4. Reload the gateway node: the demo has nothing to reload, and the
  // page says so (the node's answer, 409, shown as an error).
  await tab.click('button[data-action="reload"][data-addr="1.1.1"]');
  await poll("the reload's answer on the page", 20_000, async () =>
    (await tab.$eval("#message", (m) => m.textContent ?? "")).includes("nothing to reload"),
  );
  log("reload answered: nothing to reload");

  // 5. Mark the chat node unavailable: guild status says so.
  await tab.click('button[data-action="unavailable"][data-addr="1.3.1"]');
  await poll("chat unavailable in guild status", 20_000, async () => (await guildStatus(bin, clusterFile)).chat?.available === "no");
  await poll("chat unavailable on the page", 10_000, async () =>
    (await tab.$eval('#members tr[data-addr="1.3.1"] td.available', (td) => td.textContent)) === "no",
  );
  log("chat is unavailable in guild status");

  // 6. Drain it: it stops, the others go on.
  await tab.click('button[data-action="drain"][data-addr="1.3.1"]');
  await poll("chat down in guild status", 40_000, async () => {
    const s = await guildStatus(bin, clusterFile);
    return s.chat?.line.includes("down") && s.gate?.available === "yes" && s.world?.available === "yes";
  });
  await poll("chat gone on the page", 15_000, async () =>
    (await tab.$eval('#members tr[data-addr="1.3.1"] td.available', (td) => td.textContent)) === "gone",
  );
  await tab.screenshot({ path: join(work, "admin-drained.png"), fullPage: true });
  log("chat drained; the demo goes on");

  // 7. No 404.
  if (notFound.length) throw new Error(`404s: ${notFound.join(", ")}`);
}

const timer = setTimeout(() => {
  console.error(`the test took longer than ${TOTAL_TIMEOUT_MS} ms`);
  process.exitCode = 1;
  stopAll().finally(() => process.exit(1));
}, TOTAL_TIMEOUT_MS);

try {
  await main();
  log("PASS; screenshots and logs in", work);
} catch (err) {
  console.error("FAIL:", err.message, "\nscreenshots and logs in", work);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await browser?.close().catch(() => {});
  await stopAll();
  // Exit now: a handle left open (a keep-alive socket, a child's pipe)
  // must not keep the test, and CI, waiting after it is over.
  process.exit(process.exitCode ?? 0);
}
