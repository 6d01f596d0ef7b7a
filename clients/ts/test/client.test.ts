import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  Code,
  codeName,
  connect,
  gate,
  GOING_AWAY,
  GuildError,
  isGoingAway,
  isGuildError,
  MAX_RETRIES,
  type Client,
  type ConnectOptions,
  type ReconnectEvent,
  type WebSocketConstructor,
} from "../src/index.js";
import { FakeGateway, waitFor, type FakeGatewayOptions } from "./fakegate.js";

const str = (value: string) => toBinary(StringValueSchema, create(StringValueSchema, { value }));
const unstr = (b: Uint8Array) => fromBinary(StringValueSchema, b).value;

let gw: FakeGateway | undefined;
let clients: Client[] = [];
let extra: FakeGateway[] = [];

async function setup(g: FakeGatewayOptions = {}, o: Partial<ConnectOptions> = {}): Promise<{ g: FakeGateway; c: Client }> {
  gw = await FakeGateway.start(g);
  const c = await connect({ url: gw.url, WebSocket, ...o });
  clients.push(c);
  return { g: gw, c };
}

async function rejection(p: Promise<unknown>): Promise<GuildError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GuildError);
    return e as GuildError;
  }
  throw new Error("expected a rejection");
}

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  await gw?.stop();
  gw = undefined;
  for (const g of extra) await g.stop();
  extra = [];
});

/** gateway starts a fake gateway that afterEach stops. */
async function gateway(opts: FakeGatewayOptions = {}): Promise<FakeGateway> {
  const g = await FakeGateway.start(opts);
  extra.push(g);
  return g;
}

/** deadURL is a gateway URL where nothing listens. */
async function deadURL(): Promise<string> {
  const g = await FakeGateway.start();
  const url = g.url;
  await g.stop();
  return url;
}

describe("codes", () => {
  it("names codes as PROTOCOL.md does", () => {
    expect(codeName(0)).toBe("OK");
    expect(codeName(4)).toBe("DeadlineExceeded");
    expect(codeName(14)).toBe("Unavailable");
    expect(codeName(16)).toBe("Unauthenticated");
    expect(codeName(17)).toBe("Reserved");
    expect(codeName(1001)).toBe("Game");
    const e = new GuildError(Code.NotFound, "no such room");
    expect(e.code).toBe(5);
    expect(e.codeName).toBe("NotFound");
    expect(e.message).toBe("no such room");
    expect(String(e)).toBe("GuildError: NotFound (5): no such room");
    expect(isGuildError(e, 5)).toBe(true);
    expect(isGuildError(e, 4)).toBe(false);
  });

  it("encodes a Handshake as PROTOCOL.md shows", () => {
    const b = toBinary(
      gate.FrameSchema,
      create(gate.FrameSchema, { body: { case: "handshake", value: { version: 1, token: "secret", client: "ts-sdk/0.1" } } }),
    );
    const hex = Buffer.from(b).toString("hex").replace(/(..)/g, "$1 ").trim();
    expect(hex).toBe("0a 16 08 01 12 06 73 65 63 72 65 74 1a 0a 74 73 2d 73 64 6b 2f 30 2e 31");
  });
});

describe("handshake", () => {
  it("opens a session", async () => {
    const connects: [string, string][] = [];
    const { g, c } = await setup(
      { heartbeatMs: 5000, handshake: (token) => (token === "tok" ? { code: 0, userId: "alice" } : undefined) },
      { token: "tok", onConnect: (s, u) => connects.push([s, u]) },
    );
    expect(c.sessionId).toBe("s1");
    expect(c.userId).toBe("alice");
    expect(c.heartbeatMs).toBe(5000);
    expect(c.connected).toBe(true);
    expect(connects).toEqual([["s1", "alice"]]);
    const hs = g.session(1).frames[0]!.body;
    expect(hs.case).toBe("handshake");
    if (hs.case === "handshake") {
      expect(hs.value.version).toBe(1);
      expect(hs.value.token).toBe("tok");
      expect(hs.value.client).toBe("ts-sdk/0.1");
    }
  });

  it("rejects connect with the ack's code when refused", async () => {
    gw = await FakeGateway.start({ handshake: () => ({ code: 16, message: "bad token" }) });
    const e = await rejection(connect({ url: gw.url, WebSocket, token: "nope" }));
    expect(e.code).toBe(16);
    expect(e.codeName).toBe("Unauthenticated");
    expect(e.message).toBe("bad token");
  });

  it("rejects connect with a Close's code from a full gateway", async () => {
    gw = await FakeGateway.start({ closeAtConnect: () => ({ code: 14, reason: "the gateway is full" }) });
    const e = await rejection(connect({ url: gw.url, WebSocket }));
    expect(e.code).toBe(14);
    expect(e.message).toBe("the gateway is full");
  });

  it("rejects connect with 14 when nothing listens", async () => {
    gw = await FakeGateway.start();
    const url = gw.url;
    await gw.stop();
    gw = undefined;
    const e = await rejection(connect({ url, WebSocket }));
    expect(e.code).toBe(14);
  });
});

describe("requests", () => {
  it("sends typed requests and decodes replies", async () => {
    const { c } = await setup({
      onRequest: (req, s) => s.respond(req.id, 0, "", str(unstr(req.body).toUpperCase())),
    });
    const reply = await c.request("echo.Upper", StringValueSchema, { value: "hi" }, StringValueSchema);
    expect(reply.value).toBe("HI");
    expect(unstr(await c.requestRaw("echo.Upper", str("raw")))).toBe("RAW");
  });

  it("matches concurrent responses by id, in any order", async () => {
    const { g, c } = await setup({ onRequest: () => {} });
    const ps = [1, 2, 3, 4, 5].map((i) => c.requestRaw(`svc.M${i}`, str(`q${i}`)));
    const s = g.session(1);
    await waitFor(() => s.count("request") === 5);
    const reqs = s.frames.flatMap((f) => (f.body.case === "request" ? [f.body.value] : []));
    expect(new Set(reqs.map((r) => r.id)).size).toBe(5);
    for (const r of [...reqs].reverse()) s.respond(r.id, 0, "", str(`${r.route}:${unstr(r.body)}`));
    const got = (await Promise.all(ps)).map(unstr);
    expect(got).toEqual(["svc.M1:q1", "svc.M2:q2", "svc.M3:q3", "svc.M4:q4", "svc.M5:q5"]);
  });

  it("turns error codes into GuildErrors", async () => {
    const { c } = await setup({
      onRequest: (req, s) => {
        if (req.route === "shop.Buy") s.respond(req.id, 1001, "not enough gold");
        else s.respond(req.id, 12, `no route for ${req.route}`);
      },
    });
    const e1 = await rejection(c.requestRaw("shop.Buy", new Uint8Array()));
    expect([e1.code, e1.codeName, e1.message]).toEqual([1001, "Game", "not enough gold"]);
    const e2 = await rejection(c.request("nope.X", StringValueSchema, {}, StringValueSchema));
    expect([e2.code, e2.codeName, e2.message]).toEqual([12, "Unimplemented", "no route for nope.X"]);
  });

  it("fails a request with 4 after requestTimeoutMs and drops the late response", async () => {
    let late: (() => void) | undefined;
    const { c } = await setup(
      {
        onRequest: (req, s) => {
          if (req.route === "slow.X") late = () => s.respond(req.id, 0, "", str("late"));
          else s.respond(req.id, 0, "", req.body);
        },
      },
      { requestTimeoutMs: 100 },
    );
    const t0 = Date.now();
    const e = await rejection(c.requestRaw("slow.X", new Uint8Array()));
    expect(e.code).toBe(4);
    expect(e.codeName).toBe("DeadlineExceeded");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    late!();
    // The late response is ignored and the session goes on.
    expect(unstr(await c.requestRaw("fast.X", str("ok")))).toBe("ok");
    const e2 = await rejection(c.requestRaw("slow.X", new Uint8Array(), { timeoutMs: 30 }));
    expect(e2.code).toBe(4);
  });
});

describe("pushes", () => {
  it("dispatches pushes by route, before the response, and unsubscribes", async () => {
    const { g, c } = await setup({
      onRequest: (req, s) => {
        s.push("chat.Line", str(unstr(req.body)));
        s.respond(req.id, 0, "");
      },
    });
    const typed: string[] = [];
    const raw: string[] = [];
    const off = c.onPush("chat.Line", StringValueSchema, (m) => typed.push(m.value));
    c.onPushRaw("chat.Line", (b) => raw.push(unstr(b)));
    c.onPushRaw("other.Route", () => raw.push("wrong route"));

    await c.requestRaw("chat.Say", str("one"));
    expect(typed).toEqual(["one"]);
    expect(raw).toEqual(["one"]);

    off();
    off(); // Safe to call twice.
    await c.requestRaw("chat.Say", str("two"));
    expect(typed).toEqual(["one"]);
    expect(raw).toEqual(["one", "two"]);

    // Pushes on routes nobody listens to are ignored.
    g.session(1).push("unknown.Route", str("x"));
    await c.requestRaw("chat.Say", str("three"));
    expect(raw).toEqual(["one", "two", "three"]);
  });

  it("reports a push that does not decode, or a handler that throws, to onError", async () => {
    const errors: unknown[] = [];
    const { g, c } = await setup({}, { onError: (e) => errors.push(e) });
    const got: string[] = [];
    c.onPush("p.Bad", StringValueSchema, (m) => got.push(m.value));
    c.onPushRaw("p.Throw", () => {
      throw new Error("boom");
    });
    c.onPushRaw("p.Throw", () => got.push("second handler ran"));
    g.session(1).push("p.Bad", new Uint8Array([0xff, 0xff]));
    g.session(1).push("p.Throw", new Uint8Array());
    await waitFor(() => errors.length === 2);
    expect(isGuildError(errors[0], Code.DataLoss)).toBe(true);
    expect((errors[1] as Error).message).toBe("boom");
    expect(got).toEqual(["second handler ran"]);
  });
});

describe("heartbeats", () => {
  it("sends heartbeats while idle, and none while busy", async () => {
    const { g, c } = await setup({ heartbeatMs: 40 });
    const s = g.session(1);
    await waitFor(() => s.count("heartbeat") >= 3, 1000, "3 heartbeats");
    // Requests sent more often than heartbeat_ms stand in for heartbeats.
    const before = s.count("heartbeat");
    for (let i = 0; i < 10; i++) {
      await c.requestRaw("echo.X", new Uint8Array());
      await new Promise((r) => setTimeout(r, 15));
    }
    expect(s.count("heartbeat") - before).toBeLessThanOrEqual(1);
    expect(c.connected).toBe(true);
  });

  it("closes with 4 after 3 x heartbeat_ms of silence, and fails requests with 14", async () => {
    const closes: (GuildError | undefined)[] = [];
    const { c } = await setup(
      { heartbeatMs: 40, answerHeartbeats: false, onRequest: () => {} },
      { onClose: (e) => closes.push(e) },
    );
    const t0 = Date.now();
    const e = await rejection(c.requestRaw("never.Answered", new Uint8Array()));
    expect(e.code).toBe(14);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    expect(closes).toHaveLength(1);
    expect(closes[0]!.code).toBe(4);
    expect(c.connected).toBe(false);
    expect(c.closed).toBe(true);
  });
});

describe("connection end", () => {
  it("fails requests in flight with 14 when the connection drops", async () => {
    const closes: (GuildError | undefined)[] = [];
    const { g, c } = await setup({ onRequest: () => {} }, { onClose: (e) => closes.push(e) });
    const ps = [c.requestRaw("a.B", new Uint8Array()), c.requestRaw("a.C", new Uint8Array())].map(rejection);
    await waitFor(() => g.session(1).count("request") === 2);
    g.session(1).ws.terminate();
    for (const p of ps) expect((await p).code).toBe(14);
    expect(closes.map((e) => e?.code)).toEqual([14]);
    expect(c.sessionId).toBe("");
    expect((await rejection(c.requestRaw("a.B", new Uint8Array()))).code).toBe(14);
  });

  it("sends a request on an idempotent route again after a lost connection", async () => {
    let n = 0;
    const { g, c } = await setup(
      {
        onRequest: (req, s) => {
          n++;
          if (n === 2) s.ws.terminate(); // both requests taken, neither answered
          if (n <= 2) return;
          s.respond(req.id, 0, "", req.body);
        },
      },
      { reconnect: { minMs: 5, maxMs: 20 }, idempotent: (route) => route === "a.Read" },
    );
    const read = c.requestRaw("a.Read", str("r"));
    const write = rejection(c.requestRaw("a.Write", str("w")));
    expect((await write).code).toBe(14);
    expect(unstr(await read)).toBe("r");
    expect(g.sessions.length).toBe(2);
    expect(n).toBe(3); // the write was not sent again
    expect(MAX_RETRIES).toBe(3);
  });

  it("passes a kick's Close code to onClose", async () => {
    const closes: (GuildError | undefined)[] = [];
    const { g, c } = await setup({ onRequest: () => {} }, { onClose: (e) => closes.push(e) });
    const p = rejection(c.requestRaw("a.B", new Uint8Array()));
    await waitFor(() => g.session(1).count("request") === 1);
    g.session(1).send({ case: "close", value: { code: 7, reason: "kicked" } });
    g.session(1).ws.close();
    expect((await p).code).toBe(14);
    await waitFor(() => closes.length === 1);
    expect([closes[0]!.code, closes[0]!.codeName, closes[0]!.message]).toEqual([7, "PermissionDenied", "kicked"]);
    expect(isGoingAway(closes[0])).toBe(false);
  });

  it("close() says goodbye and cancels requests in flight", async () => {
    const closes: (GuildError | undefined)[] = [];
    const { g, c } = await setup({ onRequest: () => {} }, { onClose: (e) => closes.push(e) });
    const p = rejection(c.requestRaw("a.B", new Uint8Array()));
    await waitFor(() => g.session(1).count("request") === 1);
    await c.close();
    await c.close();
    expect((await p).code).toBe(Code.Canceled);
    await waitFor(() => g.session(1).closed);
    expect(g.session(1).count("close")).toBe(1);
    expect(closes).toEqual([undefined]);
    expect(c.closed).toBe(true);
    expect((await rejection(c.requestRaw("a.B", new Uint8Array()))).code).toBe(14);
  });
});

describe("reconnect", () => {
  it("reconnects with a new session and calls onConnect again", async () => {
    const connects: string[] = [];
    const closes: (number | undefined)[] = [];
    const { g, c } = await setup(
      {},
      {
        reconnect: { minMs: 20, maxMs: 100 },
        onConnect: (sid) => connects.push(sid),
        onClose: (e) => closes.push(e?.code),
      },
    );
    expect(connects).toEqual(["s1"]);
    g.session(1).ws.terminate();
    await waitFor(() => connects.length === 2, 2000, "reconnection");
    expect(connects).toEqual(["s1", "s2"]);
    expect(closes).toEqual([14]);
    expect(c.sessionId).toBe("s2");
    expect(unstr(await c.requestRaw("echo.X", str("again")))).toBe("again");
    const hs = g.session(2).frames[0]!.body;
    expect(hs.case).toBe("handshake");
  });

  it("backs off while the gateway is full, then connects", async () => {
    const connects: string[] = [];
    const { g } = await setup(
      { closeAtConnect: (n) => (n >= 2 && n <= 3 ? { code: 14, reason: "full" } : undefined) },
      { reconnect: { minMs: 10, maxMs: 40 }, onConnect: (sid) => connects.push(sid) },
    );
    g.session(1).ws.terminate();
    await waitFor(() => connects.length === 2, 2000, "reconnection");
    expect(connects).toEqual(["s1", "s4"]);
  });

  it("stops when a reconnection is refused for good", async () => {
    const closes: (number | undefined)[] = [];
    const { g, c } = await setup(
      { handshake: (_t, n) => (n > 1 ? { code: 16, message: "token expired" } : undefined) },
      { token: "t", reconnect: { minMs: 10, maxMs: 20 }, onClose: (e) => closes.push(e?.code) },
    );
    g.session(1).ws.terminate();
    await waitFor(() => closes.length === 2, 2000, "final close");
    expect(closes).toEqual([14, 16]);
    expect(c.closed).toBe(true);
    await new Promise((r) => setTimeout(r, 60));
    expect(g.sessions).toHaveLength(2);
  });

  it("does not reconnect after close()", async () => {
    const { g, c } = await setup({}, { reconnect: { minMs: 10, maxMs: 20 } });
    await c.close();
    await new Promise((r) => setTimeout(r, 60));
    expect(g.sessions).toHaveLength(1);
  });
});

describe("resume", () => {
  it("presents the latest resume token on reconnection and reports a resumed session", async () => {
    const events: ReconnectEvent[] = [];
    const resumes: string[] = [];
    const pushes: string[] = [];
    const { g, c } = await setup(
      {
        handshake: (_token, n, resume) => {
          resumes.push(resume);
          if (n === 1) return { code: 0, resumeToken: "s1.aaa" };
          if (resume === "s1.bbb") return { code: 0, userId: "ana", sessionId: "s1", resumeToken: "s1.ccc", resumed: true, resync: n === 3 };
          return { code: 0 };
        },
        afterAck: (s, n) => {
          if (n === 1) s.send({ case: "sessionUpdate", value: { userId: "ana", resumeToken: "s1.bbb" } });
          if (n === 2) s.push("game.Kept", str("kept"));
        },
      },
      { token: "tok", reconnect: { minMs: 20, maxMs: 100 }, onReconnect: (e) => events.push(e) },
    );
    c.onPushRaw("game.Kept", (b) => pushes.push(unstr(b)));
    await waitFor(() => c.userId === "ana", 2000, "the SessionUpdate");
    g.session(1).ws.terminate();
    await waitFor(() => events.length === 1, 2000, "reconnection");
    expect(resumes).toEqual(["", "s1.bbb"]);
    expect(events[0]!.resumed).toBe(true);
    expect(events[0]!.resync).toBe(false);
    expect(c.sessionId).toBe("s1");
    await waitFor(() => pushes.length === 1, 2000, "the kept push");
    expect(pushes).toEqual(["kept"]);
    const hs = g.session(2).frames[0]!.body;
    expect(hs.case === "handshake" && hs.value.token).toBe("tok");
    // A kick ends the session for good: the next reconnection presents no token.
    g.session(2).send({ case: "close", value: { code: 7, reason: "kicked" } });
    g.session(2).ws.close();
    await waitFor(() => events.length === 2, 2000, "reconnection after the kick");
    expect(resumes[2]).toBe("");
    expect(events[1]!.resumed).toBe(false);
  });
});

describe("failover", () => {
  it("moves to the next URL at once when the gateway goes away, and resends what it did not answer", async () => {
    const held: bigint[] = [];
    const g1 = await gateway({ onRequest: (req) => held.push(req.id) });
    const g2 = await gateway({ onRequest: (req, s) => s.respond(req.id, 0, "", str("g2:" + unstr(req.body))) });
    const closes: (GuildError | undefined)[] = [];
    const moves: ReconnectEvent[] = [];
    const c = await connect({
      urls: [g1.url, g2.url],
      WebSocket,
      token: "tok",
      // Far longer than the test: only an immediate move passes.
      reconnect: { minMs: 60_000, maxMs: 60_000 },
      onClose: (e) => closes.push(e),
      onReconnect: (ev) => moves.push(ev),
    });
    clients.push(c);
    const pushed: string[] = [];
    c.onPushRaw("news.Line", (b) => pushed.push(unstr(b)));
    const ps = ["a", "b", "c"].map((x) => c.requestRaw("svc.X", str(x)));
    await waitFor(() => held.length === 3);
    const s1 = g1.session(1);
    // The gateway answers what it forwarded, then goes away.
    s1.respond(held[0]!, 0, "", str("g1:a"));
    s1.goAway();
    expect((await Promise.all(ps)).map(unstr)).toEqual(["g1:a", "g2:b", "g2:c"]);
    expect(closes).toHaveLength(1);
    expect(isGoingAway(closes[0])).toBe(true);
    expect(closes[0]!.code).toBe(GOING_AWAY);
    expect(moves).toHaveLength(1);
    expect(moves[0]!.url).toBe(g2.url);
    expect(moves[0]!.from).toBe(g1.url);
    expect(moves[0]!.attempts).toBe(1);
    expect(isGoingAway(moves[0]!.cause)).toBe(true);
    expect(c.url).toBe(g2.url);
    expect(c.sessionId).toBe("s1");
    // The token went again, push handlers stayed, each request went once to g1.
    const hs = g2.session(1).frames[0]!.body;
    expect(hs.case === "handshake" && hs.value.token).toBe("tok");
    g2.session(1).push("news.Line", str("hello"));
    await waitFor(() => pushed.length === 1);
    expect(pushed).toEqual(["hello"]);
    expect(s1.count("request")).toBe(3);
    expect(g2.session(1).count("request")).toBe(2);
  });

  it("sends a request refused as not forwarded to the next gateway, and the next ones too", async () => {
    const g1 = await gateway({ onRequest: (req, s) => s.refuse(req.id) });
    const g2 = await gateway({ onRequest: (req, s) => s.respond(req.id, 0, "", str("g2")) });
    const c = await connect({ urls: [g1.url, g2.url], WebSocket, reconnect: { minMs: 60_000 } });
    clients.push(c);
    expect(unstr(await c.requestRaw("svc.X", str("")))).toBe("g2");
    expect(unstr(await c.requestRaw("svc.X", str("")))).toBe("g2");
    // The old session is still open (it may owe answers), but gets nothing new.
    expect(g1.session(1).closed).toBe(false);
    expect(g1.session(1).count("request")).toBe(1);
    g1.session(1).goAway();
  });

  it("keeps requests waiting while it reconnects, and fails them with 14 at their timeout", async () => {
    const g1 = await gateway();
    const dead = await deadURL();
    const c = await connect({ urls: [g1.url, dead], WebSocket, reconnect: { minMs: 10, maxMs: 20 } });
    clients.push(c);
    await g1.stop();
    extra = extra.filter((g) => g !== g1);
    await waitFor(() => !c.connected);
    const t0 = Date.now();
    const e = await rejection(c.requestRaw("svc.X", str("x"), { timeoutMs: 200 }));
    expect(e.code).toBe(14);
    expect(e.message).toContain("no connection to a gateway within 200ms");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(c.closed).toBe(false);
  });

  it("sends a request made while reconnecting once a gateway is back", async () => {
    const g1 = await gateway();
    const c = await connect({ urls: [g1.url], WebSocket, reconnect: { minMs: 10, maxMs: 20 } });
    clients.push(c);
    g1.session(1).ws.terminate();
    await waitFor(() => !c.connected);
    expect(unstr(await c.requestRaw("svc.X", str("later")))).toBe("later");
    expect(c.sessionId).toBe("s2");
  });

  it("connects to the first URL that accepts", async () => {
    const dead = await deadURL();
    const g = await gateway();
    const c = await connect({ urls: [dead, g.url], WebSocket });
    clients.push(c);
    expect(c.url).toBe(g.url);
    const e = await rejection(connect({ urls: [dead, dead], WebSocket }));
    expect(e.code).toBe(14);
    await expect(connect({ url: g.url, urls: [g.url], WebSocket })).rejects.toThrow(TypeError);
    await expect(connect({ urls: [], WebSocket })).rejects.toThrow(TypeError);
  });
});

describe("types", () => {
  it("accepts the DOM's and the ws package's WebSocket classes", () => {
    const fromDom: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;
    const fromWs: WebSocketConstructor = WebSocket;
    expect(fromWs).toBeTypeOf("function");
    void fromDom;
  });
});
