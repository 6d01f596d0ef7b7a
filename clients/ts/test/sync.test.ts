// subscribeReplica against a fake gateway that plays a synced state: the
// snapshot in the reply to Subscribe, deltas pushed after it, gaps,
// reconnections and failures.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connect, GapError, propsync, Replica, subscribeReplica, type Client, type ConnectOptions, type ReconnectEvent, type SubscribeReplicaOptions } from "../src/index.js";
import type { Request } from "../src/gen/gate/gatepb/gate_pb.js";
import { FakeGateway, waitFor, type FakeGatewayOptions, type FakeSession } from "./fakegate.js";
import { PlayerSchema } from "./gen/propsync/internal/testpb/test_pb.js";

const { DeltaSchema, OpSchema, Op_Kind, StepSchema, SubscribeSchema, UnsubscribeSchema } = propsync;
type Delta = propsync.Delta;

const ROUTE = "player.Sync";
const ENTITY = "player/u1";

/** A synced Player on the server's side: its name, at a version. */
class FakeState {
  version = 1n;
  name = "ana";
  constructor(readonly entity = ENTITY) {}

  snapshot(): Delta {
    return create(DeltaSchema, { entity: this.entity, version: this.version, isSnapshot: true, snapshot: toBinary(PlayerSchema, create(PlayerSchema, { name: this.name })) });
  }

  /** rename changes the name and returns the delta. */
  rename(name: string): Delta {
    this.name = name;
    this.version++;
    const op = create(OpSchema, { kind: Op_Kind.SET, path: [create(StepSchema, { field: 1 })], value: toBinary(PlayerSchema, create(PlayerSchema, { name })) });
    return create(DeltaSchema, { entity: this.entity, base: this.version - 1n, version: this.version, ops: [op] });
  }
}

const pushDelta = (s: FakeSession, d: Delta, route = "propsync") => s.push(route, toBinary(DeltaSchema, d));

let gw: FakeGateway | undefined;
let clients: Client[] = [];
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  await gw?.stop();
  gw = undefined;
});

interface Setup {
  g: FakeGateway;
  c: Client;
  st: FakeState;
  /** The Subscribe (and other) requests the gateway got, in order. */
  requests: { route: string; entity: string; session: FakeSession }[];
  /** Requests the test answers itself when hold() says so. */
  held: { req: Request; s: FakeSession }[];
}

async function setup(opts: { hold?: (n: number) => boolean; gate?: FakeGatewayOptions; client?: Partial<ConnectOptions> } = {}): Promise<Setup> {
  const st = new FakeState();
  const requests: Setup["requests"] = [];
  const held: Setup["held"] = [];
  gw = await FakeGateway.start({
    ...opts.gate,
    onRequest: (req, s) => {
      const entity = fromBinary(SubscribeSchema, req.body).entity;
      requests.push({ route: req.route, entity, session: s });
      if (opts.hold?.(requests.length)) {
        held.push({ req, s });
        return;
      }
      if (req.route === ROUTE) s.respond(req.id, 0, "", toBinary(DeltaSchema, st.snapshot()));
      else s.respond(req.id, 0, "");
    },
  });
  const c = await connect({ url: gw.url, WebSocket, ...opts.client });
  clients.push(c);
  return { g: gw, c, st, requests, held };
}

describe("subscribeReplica", () => {
  it("applies the snapshot, then the deltas pushed for its entity", async () => {
    const { g, c, st, requests } = await setup();
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema, { entity: ENTITY });
    expect(requests).toEqual([expect.objectContaining({ route: ROUTE, entity: ENTITY })]);
    expect(sub.state.name).toBe("ana");
    expect(sub.replica.version).toBe(1n);
    const names: string[] = [];
    sub.on("name", (_, p) => names.push(p.name));
    pushDelta(g.session(1), st.rename("bob"));
    pushDelta(g.session(1), new FakeState("player/u2").rename("other")); // another entity's
    pushDelta(g.session(1), st.rename("cy"));
    await waitFor(() => sub.replica.version === 3n, 2000, "the deltas");
    expect(names).toEqual(["bob", "cy"]);
    expect(sub.state.name).toBe("cy");
    expect(requests).toHaveLength(1);
  });

  it("takes the entity from the snapshot, and holds the pushes that overtook it", async () => {
    const { g, c, st, held } = await setup({ hold: (n) => n === 1 });
    const p = subscribeReplica(c, ROUTE, PlayerSchema, { pushRoute: "game.State" });
    await waitFor(() => held.length === 1, 2000, "the Subscribe");
    const snap = st.snapshot(); // version 1
    const s = g.session(1);
    pushDelta(s, st.rename("bob"), "game.State"); // 2, after the snapshot
    pushDelta(s, new FakeState("player/u2").rename("other"), "game.State");
    pushDelta(s, st.rename("ignored"), "propsync"); // not the push route
    st.version--;
    s.respond(held[0]!.req.id, 0, "", toBinary(DeltaSchema, snap));
    const sub = await p;
    await waitFor(() => sub.replica.version === 2n, 2000, "the held delta");
    expect(sub.state.name).toBe("bob");
    expect(sub.replica.entity).toBe(ENTITY);
  });

  it("lets a Replica given in place of the schema see the first snapshot", async () => {
    const { c } = await setup();
    const r = new Replica(PlayerSchema);
    const paths: string[] = [];
    r.on("", (p) => paths.push(p));
    const sub = await subscribeReplica(c, ROUTE, r);
    expect(sub.replica).toBe(r);
    expect(paths).toEqual([""]);
  });

  it("subscribes again after a gap, and after the delta that ends a subscription", async () => {
    const { g, c, st, requests } = await setup();
    const reasons: unknown[] = [];
    const errors: unknown[] = [];
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema, { onResubscribe: (r) => reasons.push(r), onError: (e) => errors.push(e) });
    st.rename("lost"); // never pushed
    pushDelta(g.session(1), st.rename("bob"));
    await waitFor(() => requests.length === 2 && sub.replica.version === 3n, 2000, "the second snapshot");
    expect(sub.state.name).toBe("bob");
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(GapError);
    pushDelta(g.session(1), create(DeltaSchema, { entity: ENTITY })); // Tracker.Ended
    await waitFor(() => requests.length === 3, 2000, "the third Subscribe");
    await waitFor(() => sub.replica.synced, 2000, "the third snapshot");
    expect(errors).toEqual([]); // gaps are no errors
    pushDelta(g.session(1), st.rename("cy"));
    await waitFor(() => sub.state.name === "cy", 2000, "a delta after it");
  });

  it("subscribes again after a delta that does not fit, and reports it", async () => {
    const { g, c, st, requests } = await setup();
    const errors: unknown[] = [];
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema, { onError: (e) => errors.push(e) });
    const bad = st.rename("bob");
    bad.ops[0]!.kind = 42 as (typeof bad.ops)[0]["kind"];
    pushDelta(g.session(1), bad);
    await waitFor(() => requests.length === 2 && sub.replica.synced, 2000, "the second snapshot");
    expect(sub.state.name).toBe("bob");
    expect(String(errors[0])).toMatch(/unknown op kind 42/);
  });

  it("subscribes again after a reconnection that did not keep the pushes, not after one that did", async () => {
    const events: ReconnectEvent[] = [];
    let next: { resumed: boolean; resync: boolean; sessionId?: string } = { resumed: true, resync: false, sessionId: "s1" };
    const { g, c, requests } = await setup({
      gate: { handshake: (_t, n) => (n === 1 ? { code: 0 } : { code: 0, ...next }) },
      client: { reconnect: { minMs: 10, maxMs: 50 }, onReconnect: (e) => events.push(e) },
    });
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema);
    const reasons: unknown[] = [];
    const sub2 = await subscribeReplica(c, ROUTE, PlayerSchema, { onResubscribe: (r) => reasons.push(r) });
    expect(requests).toHaveLength(2);
    g.session(1).ws.terminate();
    await waitFor(() => events.length === 1, 2000, "the resumption");
    await new Promise((r) => setTimeout(r, 50));
    expect(requests).toHaveLength(2);
    next = { resumed: true, resync: true };
    g.session(2).ws.terminate();
    await waitFor(() => requests.length === 4, 2000, "Subscribes after a resync");
    expect(reasons).toEqual([expect.objectContaining({ resumed: true, resync: true })]);
    next = { resumed: false, resync: false };
    g.session(3).ws.terminate();
    await waitFor(() => requests.length === 6, 2000, "Subscribes on a new session");
    expect(requests.slice(4).every((r) => r.session === g.session(4))).toBe(true);
    next = { resumed: true, resync: false, sessionId: "elsewhere" };
    g.session(4).ws.terminate();
    await waitFor(() => requests.length === 8, 2000, "Subscribes on a session resumed under another ID");
    await waitFor(() => sub.replica.synced && sub2.replica.synced, 2000, "the snapshots");
    expect(events).toHaveLength(4);
  });

  it("after a new session, holds the new subscription's deltas until its snapshot, whatever their versions", async () => {
    let n = 0;
    const { g, c, st, held } = await setup({
      hold: () => ++n === 2,
      client: { reconnect: { minMs: 10, maxMs: 50 } },
    });
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema);
    for (const name of ["b", "c", "d", "e"]) pushDelta(g.session(1), st.rename(name));
    await waitFor(() => sub.replica.version === 5n, 2000, "the deltas");
    g.session(1).ws.terminate(); // a new session: the server's state starts again at version 1
    await waitFor(() => held.length === 1, 2000, "the Subscribe on the new session");
    const fresh = new FakeState();
    fresh.name = "e";
    const snap = fresh.snapshot();
    pushDelta(g.session(2), fresh.rename("f")); // 1 → 2, before the reply
    g.session(2).respond(held[0]!.req.id, 0, "", toBinary(DeltaSchema, snap));
    await waitFor(() => sub.replica.synced && sub.replica.version === 2n, 2000, "the snapshot, then the held delta");
    expect(sub.state.name).toBe("f");
  });

  it("rejects when the first Subscribe fails, and listens no more", async () => {
    const { g, c, held } = await setup({ hold: () => true });
    const p = subscribeReplica(c, ROUTE, PlayerSchema);
    await waitFor(() => held.length === 1, 2000, "the Subscribe");
    g.session(1).respond(held[0]!.req.id, 5, "no such player");
    await expect(p).rejects.toMatchObject({ code: 5 });
    const notSnapshot = subscribeReplica(c, ROUTE, PlayerSchema);
    await waitFor(() => held.length === 2, 2000, "the second Subscribe");
    g.session(1).respond(held[1]!.req.id, 0, "", toBinary(DeltaSchema, create(DeltaSchema, { entity: ENTITY, version: 2n, base: 1n })));
    await expect(notSnapshot).rejects.toThrow(/not a snapshot/);
  });

  it("tries a Subscribe that failed again, backing off", async () => {
    const { g, c, st, requests, held } = await setup({ hold: (n) => n === 2 || n === 3 });
    const errors: unknown[] = [];
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema, { onError: (e) => errors.push(e) });
    st.rename("lost");
    pushDelta(g.session(1), st.rename("bob"));
    await waitFor(() => held.length === 1, 2000, "the second Subscribe");
    g.session(1).respond(held[0]!.req.id, 14, "try later");
    await waitFor(() => held.length === 2, 2000, "the third Subscribe");
    g.session(1).respond(held[1]!.req.id, 14, "try later");
    await waitFor(() => requests.length === 4 && sub.replica.synced, 3000, "the fourth Subscribe");
    expect(sub.state.name).toBe("bob");
    expect(errors).toHaveLength(2);
  });

  it("subscribes again, once and backing off, after a snapshot that does not decode", async () => {
    const { g, c, st, requests, held } = await setup({ hold: (n) => n === 2 });
    const errors: unknown[] = [];
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema, { onError: (e) => errors.push(e) });
    st.rename("lost");
    pushDelta(g.session(1), st.rename("bob"));
    await waitFor(() => held.length === 1, 2000, "the second Subscribe");
    const bad = create(DeltaSchema, { entity: ENTITY, version: 3n, isSnapshot: true, snapshot: new Uint8Array([0x0a, 0x09]) });
    g.session(1).respond(held[0]!.req.id, 0, "", toBinary(DeltaSchema, bad));
    await waitFor(() => requests.length === 3 && sub.replica.synced, 2000, "the third Subscribe");
    await new Promise((r) => setTimeout(r, 150));
    expect(requests).toHaveLength(3);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/does not decode/);
    expect(sub.state.name).toBe("bob");
  });

  it("close stops applying pushes, and sends Unsubscribe to unsubscribeRoute", async () => {
    const { g, c, st, requests } = await setup();
    const opts: SubscribeReplicaOptions = { entity: ENTITY, unsubscribeRoute: "player.Unsync" };
    const sub = await subscribeReplica(c, ROUTE, PlayerSchema, opts);
    await sub.close();
    await sub.close();
    expect(requests.map((r) => r.route)).toEqual([ROUTE, "player.Unsync"]);
    expect(fromBinary(UnsubscribeSchema, g.session(1).frames.filter((f) => f.body.case === "request").map((f) => (f.body.value as Request).body)[1]!).entity).toBe(ENTITY);
    pushDelta(g.session(1), st.rename("bob"));
    await new Promise((r) => setTimeout(r, 50));
    expect(sub.state.name).toBe("ana");
  });
});
