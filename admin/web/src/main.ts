// guild's admin dashboard: every member live, from /api/events, and the
// actions, each sent with the admin token.

import "./style.css";
import { post, reload, setToken, stream, token, Unauthorized } from "./api";
import { Chart, fmt } from "./chart";
import type { NodeView, ReloadReply, View } from "./types";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no #${id}`);
  return el as T;
};

const status = $("status");
const message = $("message");
const tokenForm = $<HTMLFormElement>("token-form");
const chart = new Chart($<HTMLCanvasElement>("chart"), $("legend"));
let actionsEnabled = false;

function say(text: string, error = false): void {
  message.textContent = text;
  message.className = error ? "error" : "";
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", cls = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function uptime(s: number): string {
  if (s <= 0) return "—";
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${Math.floor(s % 60)}s`;
}

function ms(seconds: number | undefined): string {
  if (seconds === undefined) return "—";
  const v = seconds * 1000;
  return v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(v < 10 ? 2 : 0)} ms`;
}

function actionButton(label: string, action: string, n: NodeView, run: () => Promise<void>): HTMLButtonElement {
  const b = el("button", label);
  b.type = "button";
  b.dataset.action = action;
  b.dataset.addr = n.addr;
  b.disabled = !actionsEnabled || !n.member;
  b.title = actionsEnabled ? "" : "actions need the admin token (admin.token)";
  b.addEventListener("click", () => {
    b.disabled = true;
    run()
      .catch((err: unknown) => {
        if (err instanceof Unauthorized) askToken("the token was refused");
        else say(`${label} ${n.addr}: ${(err as Error).message}`, true);
      })
      .finally(() => (b.disabled = false));
  });
  return b;
}

function memberRow(n: NodeView): HTMLTableRowElement {
  const tr = el("tr");
  tr.dataset.addr = n.addr;
  tr.className = !n.reachable ? "unreachable" : n.available ? "" : "unavailable";
  const s = n.snapshot;
  const avail = el("td", !n.member ? "gone" : n.available ? "yes" : "no", "available");
  const cells: (string | HTMLElement)[] = [
    n.addr,
    n.name || "?",
    n.services.join(", ") || "—",
    avail,
    uptime(n.uptime_seconds),
    s ? String(s.actor.Actors) : "—",
    el("td", s ? fmt(n.rates.messages) : "—", "msg-rate"),
    s ? String(s.actor.DeadLetters) : "—",
    s ? `${s.actor.Restarts} / ${s.actor.Panics}` : "—",
  ];
  for (const c of cells) tr.append(typeof c === "string" ? el("td", c) : c);
  const actions = el("td", "", "actions");
  if (!n.reachable) actions.append(el("span", n.error ?? "unreachable", "error"));
  if (n.member) {
    actions.append(
      n.available
        ? actionButton("mark unavailable", "unavailable", n, async () => {
            await post(`api/nodes/${n.addr}/available`, { available: false });
            say(`${n.name || n.addr} is marked unavailable`);
          })
        : actionButton("mark available", "available", n, async () => {
            await post(`api/nodes/${n.addr}/available`, { available: true });
            say(`${n.name || n.addr} is marked available`);
          }),
      actionButton("reload", "reload", n, async () => {
        say(reloadSummary(n, await reload(n.addr)), false);
      }),
      actionButton("drain", "drain", n, async () => {
        const what = s?.drainable === false ? "mark it unavailable (it has no drain)" : "drain it and shut it down";
        if (!confirm(`Drain ${n.name || n.addr}? This will ${what}.`)) return;
        const r = (await post(`api/nodes/${n.addr}/drain`, {})) as { draining?: boolean };
        say(r.draining ? `${n.name || n.addr} is draining` : `${n.name || n.addr} is marked unavailable (it has no drain)`);
      }),
    );
  }
  tr.append(actions);
  return tr;
}

/** reloadSummary says in one line what a reload of n did. */
function reloadSummary(n: NodeView, r: ReloadReply): string {
  const parts: string[] = [];
  for (const x of r.results ?? []) {
    parts.push(x.error ? `tables ${x.set} kept ${x.previous.hash || "none"}: ${x.error}` : x.changed ? `tables ${x.set} ${x.previous.hash || "none"} → ${x.version.hash}` : `tables ${x.set} unchanged`);
  }
  for (const rl of r.reloaders ?? []) {
    if (rl.error) parts.push(`${rl.name}: ${rl.error}`);
    for (const it of rl.items) {
      parts.push(it.error ? `${rl.name}/${it.name} kept ${it.version || "none"}: ${it.error}` : it.changed ? `${rl.name}/${it.name} ${it.previous || "none"} → ${it.version}` : `${rl.name}/${it.name} unchanged`);
    }
  }
  return `${n.name || n.addr} reloaded${r.ok ? "" : " (something was kept)"}: ${parts.join(" · ") || "nothing changed"}`;
}

function table(head: string[], rows: (string | number)[][], cls: string): HTMLTableElement {
  const t = el("table", "", cls);
  const tr = el("tr");
  for (const h of head) tr.append(el("th", h));
  t.append(el("thead"), el("tbody"));
  t.tHead?.append(tr);
  for (const r of rows) {
    const row = el("tr");
    for (const c of r) row.append(el("td", String(c)));
    t.tBodies[0]?.append(row);
  }
  return t;
}

function nodeCard(n: NodeView): HTMLElement {
  const card = el("article", "", "node");
  card.dataset.addr = n.addr;
  card.append(el("h3", `${n.name || "?"} — ${n.addr}`));
  const s = n.snapshot;
  if (!s) {
    card.append(el("p", n.error ?? "no snapshot", "error"));
    return card;
  }
  const facts = el("p", "", "facts");
  facts.textContent =
    `${s.actor.Actors} actors · ${fmt(n.rates.messages)} msg/s (${fmt(n.rates.system_messages)} system) · ` +
    `${s.actor.Timers} timers · ${s.actor.DeadLetters} dead letters · ${s.actor.Restarts} restarts · ${s.actor.Panics} panics`;
  card.append(facts);
  if (s.lease) {
    const l = s.lease;
    card.append(
      el(
        "p",
        `lease: ${l.renewals} renewals (mean ${ms(l.mean_renew_seconds)}) · ${l.failures} failed · ` +
          `${l.grants} granted${l.grants > 1 ? " (it was lost and taken again)" : ""}`,
        l.failures > 0 || l.grants > 1 ? "facts lease error" : "facts lease",
      ),
    );
  }

  const top = s.top ?? [];
  card.append(el("h4", "Top actors by mailbox backlog"));
  card.append(
    top.length
      ? table(["actor", "names", "messages waiting"], top.map((a) => [a.pid, (a.names ?? []).join(", ") || "—", a.messages]), "top")
      : el("p", "every mailbox is empty", "hint"),
  );

  card.append(el("h4", "RPC and gateway routes"));
  const rpc = n.rpc ?? [];
  if (!s.rpc_timed) card.append(el("p", "not timed on this node", "hint"));
  else if (!rpc.length) card.append(el("p", "no calls yet", "hint"));
  else
    card.append(
      table(
        ["side", "method or route", "calls/s", "p50", "p99", "calls", "errors"],
        rpc.map((r) => [r.side, r.method, fmt(r.rate), ms(r.p50), ms(r.p99), r.calls, r.errors]),
        "rpc",
      ),
    );

  if (s.gateway) {
    const g = s.gateway;
    card.append(el("h4", "Gateway"));
    card.append(
      el(
        "p",
        `${g.conns} connections · ${fmt(n.rates.gateway_responses)} requests/s (${fmt(n.rates.gateway_errors)} errors/s) · ` +
          `${fmt(n.rates.pushes)} pushes/s · ${g.kicks} kicks · ${g.slow_clients} slow clients cut off`,
        "facts gateway",
      ),
    );
    card.append(
      table(
        ["listener", "sessions open", "opened"],
        g.listeners.filter((l) => l.Opened > 0 || l.Open > 0).map((l) => [l.Kind, l.Open, l.Opened]),
        "listeners",
      ),
    );
  }
  card.append(el("h4", `Recent panics (${s.failures_total ?? 0} in all)`));
  const failures = s.failures ?? [];
  if (!s.failures_kept) card.append(el("p", "not kept on this node", "hint"));
  else if (!failures.length) card.append(el("p", "none", "hint"));
  else
    for (const f of failures) {
      const d = el("details", "", "failure");
      const names = f.names?.length ? ` (${f.names.join(", ")})` : "";
      d.append(
        el("summary", `${new Date(f.time).toLocaleTimeString()} · ${f.kind} in ${f.where} · ${f.pid}${names}` +
          `${f.message_type ? ` · ${f.message_type}` : ""} · ${f.reason}`),
        el("pre", f.stack || "(no stack)"),
      );
      card.append(d);
    }
  if (s.tables?.length || s.reloaders?.length) {
    card.append(el("h4", "Data tables and hot-fix modules"));
    const rows: (string | number)[][] = [];
    for (const t of s.tables ?? []) {
      const loaded = t.version.hash ? new Date(t.version.loaded).toLocaleTimeString() : "—";
      const note = t.last_error ? `last reload failed: ${t.last_error}` : `${(t.tables ?? []).length} tables · ${t.loads} loads · ${t.failures} failed`;
      rows.push([`tables ${t.set}`, t.version.hash || "none", loaded, note]);
    }
    for (const rl of s.reloaders ?? []) {
      if (rl.error) rows.push([rl.name, "—", "", rl.error]);
      for (const it of rl.items) rows.push([`${rl.name}/${it.name}`, it.version || "none", "", ""]);
    }
    card.append(table(["what", "version", "loaded", ""], rows, "versions"));
  }
  if (s.grains?.length) {
    card.append(el("h4", "Grains"));
    card.append(
      table(
        ["active by kind", "active", "activations", "deactivations", "hand-overs", "flushes", "flush errors"],
        s.grains.map((g) => [
          g.kinds.map((k) => (g.active ? `${k}: ${g.active[k] ?? 0}` : k)).join(", "),
          g.stats.Active, g.stats.Activations, g.stats.Deactivations, g.stats.Handovers, g.stats.Flushes, g.stats.FlushErrors,
        ]),
        "grains",
      ),
    );
  }
  return card;
}

function render(v: View): void {
  actionsEnabled = v.actions;
  $("serving").textContent = `served by ${v.serving} · ${new Date(v.time).toLocaleTimeString()}`;
  const body = $<HTMLTableElement>("members").tBodies[0];
  body?.replaceChildren(...v.nodes.map(memberRow));
  $("nodes").replaceChildren(...v.nodes.filter((n) => n.member).map(nodeCard));
  const rates = new Map<string, number>();
  for (const n of v.nodes) if (n.reachable) rates.set(n.name || n.addr, n.rates.messages);
  chart.push(rates);
  if (!v.actions) say("Read-only: this dashboard has no token (admin.token), so its actions are off.");
}

function askToken(why: string): void {
  status.textContent = why;
  status.className = "status error";
  tokenForm.hidden = false;
  $<HTMLInputElement>("token-input").focus();
}

let controller: AbortController | undefined;

async function connect(): Promise<void> {
  controller?.abort();
  const c = new AbortController();
  controller = c;
  let backoff = 500;
  while (!c.signal.aborted) {
    try {
      status.textContent = "connecting…";
      status.className = "status";
      await stream((v) => {
        status.textContent = "live";
        status.className = "status live";
        backoff = 500;
        render(v);
      }, c.signal);
    } catch (err) {
      if (c.signal.aborted) return;
      if (err instanceof Unauthorized) {
        askToken(token() ? "the token was refused" : "this dashboard needs its token");
        return;
      }
      status.textContent = `disconnected: ${(err as Error).message}`;
      status.className = "status error";
    }
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 5000);
  }
}

tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  setToken($<HTMLInputElement>("token-input").value);
  tokenForm.hidden = true;
  void connect();
});
$("token-button").addEventListener("click", () => askToken("give the admin token"));
$<HTMLFormElement>("kick-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = $<HTMLInputElement>("kick-user").value.trim();
  const reason = $<HTMLInputElement>("kick-reason").value.trim();
  post(`api/users/${encodeURIComponent(user)}/kick`, { reason })
    .then(() => say(`${user} was kicked`))
    .catch((err: unknown) => {
      if (err instanceof Unauthorized) askToken("the token was refused");
      else say(`kick ${user}: ${(err as Error).message}`, true);
    });
});

void connect();
