// The dashboard's API: the token, the event stream and the actions.

import type { ReloadReply, View } from "./types";

const TOKEN_KEY = "guild-admin-token";

export function token(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(t: string): void {
  sessionStorage.setItem(TOKEN_KEY, t.trim());
}

function headers(): HeadersInit {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** Unauthorized is thrown when the server wants the token. */
export class Unauthorized extends Error {}

/**
 * stream reads /api/events (Server-Sent Events over fetch, so that it can
 * send the token in a header, which EventSource cannot) and calls onView
 * for each view until the stream ends or signal aborts.
 */
export async function stream(onView: (v: View) => void, signal: AbortSignal): Promise<void> {
  const resp = await fetch("api/events", { headers: headers(), signal, cache: "no-store" });
  if (resp.status === 401) throw new Unauthorized();
  if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status} ${await resp.text()}`);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end: number;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data: ")) onView(JSON.parse(line.slice(6)) as View);
      }
    }
    if (buf.length > 8 << 20) throw new Error("events: an event larger than 8 MiB");
  }
}

/** post sends an action and returns the server's answer, or throws its error. */
export async function post(path: string, body: unknown): Promise<unknown> {
  const resp = await fetch(path, {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (resp.status === 401) throw new Unauthorized();
  const answer = (await resp.json().catch(() => ({}))) as { error?: string };
  if (!resp.ok) throw new Error(answer.error ?? `${resp.status}`);
  return answer;
}

/**
 * reload asks a node to reload its tables and hot-fix modules. A reload
 * that kept an old version (422) answers its results too, with ok false;
 * other failures throw.
 */
export async function reload(addr: string): Promise<ReloadReply> {
  const resp = await fetch(`api/nodes/${addr}/reload`, {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json" },
    body: "{}",
  });
  if (resp.status === 401) throw new Unauthorized();
  const answer = (await resp.json().catch(() => ({}))) as ReloadReply;
  if (!resp.ok && resp.status !== 422) throw new Error(answer.error ?? `${resp.status}`);
  return answer;
}
