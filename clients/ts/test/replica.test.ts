// Replica against hand-built deltas: every op kind on every kind of field
// of the Go side's test state (propsync/internal/testpb/test.proto), gaps,
// callbacks by path prefix, and ops that do not fit.
import { create, equals, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DeltaError, GapError, MAX_PENDING, propsync, Replica } from "../src/index.js";
import { Class, ItemSchema, PlayerSchema, StatsSchema, type Player } from "./gen/propsync/internal/testpb/test_pb.js";

const { DeltaSchema, OpSchema, Op_Kind, StepSchema } = propsync;
type Step = propsync.Step;
type Op = propsync.Op;
type Delta = propsync.Delta;
type PlayerInit = MessageInitShape<typeof PlayerSchema>;

// Field numbers of test.proto.
const F = {
  name: 1,
  gold: 2,
  class: 3,
  avatar: 4,
  level: 5,
  online: 6,
  x: 7,
  exp: 8,
  stats: 10,
  scores: 11,
  tags: 12,
  items: 13,
  counters: 14,
  bag: 15,
  names: 16,
  flags: 17,
  horse: 20,
  dragon: 21,
} as const;
// Stats and Item.
const S = { hp: 1, mp: 2, speed: 3, buffs: 4 } as const;
const I = { id: 1, count: 2, bonus: 3, attrs: 4 } as const;

const step = (field: number, at: Step["at"] = { case: undefined }): Step => create(StepSchema, { field, at });
const idx = (field: number, index: number) => step(field, { case: "index", value: index });
const kstr = (field: number, key: string) => step(field, { case: "keyString", value: key });
const kint = (field: number, key: bigint) => step(field, { case: "keyInt", value: key });
const kuint = (field: number, key: bigint) => step(field, { case: "keyUint", value: key });
const kbool = (field: number, key: boolean) => step(field, { case: "keyBool", value: key });

/** The value of an op: a Player (or the message that holds the field) with only that field set. */
const player = (init: PlayerInit) => toBinary(PlayerSchema, create(PlayerSchema, init));
const item = (init: MessageInitShape<typeof ItemSchema>) => toBinary(ItemSchema, create(ItemSchema, init));
const stats = (init: MessageInitShape<typeof StatsSchema>) => toBinary(StatsSchema, create(StatsSchema, init));

const set = (path: Step[], value: Uint8Array): Op => create(OpSchema, { kind: Op_Kind.SET, path, value });
const clear = (...path: Step[]): Op => create(OpSchema, { kind: Op_Kind.CLEAR, path });
const del = (...path: Step[]): Op => create(OpSchema, { kind: Op_Kind.MAP_DELETE, path });
const truncate = (length: number, ...path: Step[]): Op => create(OpSchema, { kind: Op_Kind.LIST_TRUNCATE, path, length });
const append = (path: Step[], value: Uint8Array): Op => create(OpSchema, { kind: Op_Kind.LIST_APPEND, path, value });

const ENTITY = "player/u1";
const snapshot = (init: PlayerInit, version: bigint): Delta =>
  create(DeltaSchema, { entity: ENTITY, version, isSnapshot: true, snapshot: player(init) });
const delta = (base: bigint, ...ops: Op[]): Delta => create(DeltaSchema, { entity: ENTITY, base, version: base + 1n, ops });

/** A replica at version 10 of start. */
function replicaOf(start: PlayerInit): Replica<Player> {
  const r = new Replica(PlayerSchema);
  r.apply(snapshot(start, 10n));
  return r;
}

/** applies ops as one delta to a replica of start and expects the state want. */
function expectOps(start: PlayerInit, ops: Op[], want: PlayerInit): Replica<Player> {
  const r = replicaOf(start);
  r.apply(delta(10n, ...ops));
  expect(r.version).toBe(11n);
  const w = create(PlayerSchema, want);
  if (!equals(PlayerSchema, r.state, w)) expect(r.state).toEqual(w); // shows the difference
  return r;
}

const BASE: PlayerInit = {
  name: "ana",
  gold: 100n,
  class: Class.WARRIOR,
  stats: { hp: 10, mp: 5, buffs: [1, 2] },
  scores: [1, 2, 3],
  tags: ["a", "b"],
  items: [
    { id: "sword", count: 1, attrs: { sharp: 3n } },
    { id: "potion", count: 4 },
  ],
  counters: { kills: 2, deaths: 1 },
  bag: { "7": { id: "gem", count: 1 } },
  names: { 1: "one" },
  flags: { true: 1 },
  mount: { case: "horse", value: "bolt" },
};
const with_ = (patch: PlayerInit): PlayerInit => ({ ...BASE, ...patch }) as PlayerInit;

describe("Replica", () => {
  it("starts empty at version 0", () => {
    const r = new Replica(PlayerSchema);
    expect(r.version).toBe(0n);
    expect(equals(PlayerSchema, r.state, create(PlayerSchema))).toBe(true);
    expect(r.synced).toBe(false);
  });

  it("replaces the state with a snapshot, keeping the state object", () => {
    const r = replicaOf(BASE);
    const state = r.state;
    expect(r.entity).toBe(ENTITY);
    expect(r.version).toBe(10n);
    expect(equals(PlayerSchema, r.state, create(PlayerSchema, BASE))).toBe(true);
    r.apply(snapshot({ name: "bob", level: 0 }, 20n));
    expect(r.state).toBe(state);
    expect(r.version).toBe(20n);
    expect(equals(PlayerSchema, r.state, create(PlayerSchema, { name: "bob", level: 0 }))).toBe(true);
    expect(r.state.level).toBe(0);
  });

  it("refuses a snapshot that does not decode, unchanged", () => {
    const r = replicaOf(BASE);
    const bad = create(DeltaSchema, { entity: ENTITY, version: 11n, isSnapshot: true, snapshot: new Uint8Array([0x0a, 0x05, 0x61]) });
    expect(() => r.apply(bad)).toThrow(DeltaError);
    expect(r.version).toBe(10n);
    expect(equals(PlayerSchema, r.state, create(PlayerSchema, BASE))).toBe(true);
  });

  describe("SET", () => {
    it("sets scalars, an enum, bytes, an optional and 64-bit fields", () => {
      expectOps(
        BASE,
        [
          set([step(F.name)], player({ name: "zoe" })),
          set([step(F.gold)], player({ gold: -5n })),
          set([step(F.class)], player({ class: Class.MAGE })),
          set([step(F.avatar)], player({ avatar: new Uint8Array([1, 2]) })),
          set([step(F.level)], player({ level: 0 })),
          set([step(F.online)], player({ online: true })),
          set([step(F.x)], player({ x: 1.5 })),
          set([step(F.exp)], player({ exp: 18446744073709551615n })),
        ],
        with_({ name: "zoe", gold: -5n, class: Class.MAGE, avatar: new Uint8Array([1, 2]), level: 0, online: true, x: 1.5, exp: 18446744073709551615n }),
      );
    });

    it("sets a field without presence to its zero value from an empty value", () => {
      const r = expectOps(BASE, [set([step(F.name)], new Uint8Array()), set([step(F.gold)], player({ gold: 0n }))], with_({ name: "", gold: 0n }));
      expect(r.state.name).toBe("");
    });

    it("sets a field of a nested message", () => {
      expectOps(
        BASE,
        [set([step(F.stats), step(S.hp)], stats({ hp: 0 })), set([step(F.stats), step(S.mp)], stats({ mp: 9 }))],
        with_({ stats: { hp: 0, mp: 9, buffs: [1, 2] } }),
      );
    });

    it("replaces a whole message, without merging", () => {
      const r = replicaOf(BASE);
      const before = r.state.stats;
      r.apply(delta(10n, set([step(F.stats)], player({ stats: { speed: 2 } }))));
      expect(equals(PlayerSchema, r.state, create(PlayerSchema, with_({ stats: { speed: 2 } })))).toBe(true);
      expect(before?.hp).toBe(10); // the old message is not changed in place
    });

    it("sets an element of a repeated scalar field", () => {
      expectOps(BASE, [set([idx(F.scores, 1)], player({ scores: [20] })), set([idx(F.tags, 0)], player({ tags: [""] }))], with_({ scores: [1, 20, 3], tags: ["", "b"] }));
    });

    it("sets an element of a repeated message field, and a field inside one", () => {
      expectOps(
        BASE,
        [
          set([idx(F.items, 0), step(I.count)], item({ count: 2 })),
          set([idx(F.items, 0), kstr(I.attrs, "sharp")], item({ attrs: { sharp: 4n } })),
          set([idx(F.items, 0), step(I.bonus)], item({ bonus: { hp: 1 } })),
          set([idx(F.items, 1)], player({ items: [{ id: "shield" }] })),
        ],
        with_({
          items: [
            { id: "sword", count: 2, attrs: { sharp: 4n }, bonus: { hp: 1 } },
            { id: "shield" },
          ],
        }),
      );
    });

    it("sets map entries of every key kind, new or not", () => {
      expectOps(
        BASE,
        [
          set([kstr(F.counters, "kills")], player({ counters: { kills: 3 } })),
          set([kstr(F.counters, "wins")], player({ counters: { wins: 0 } })),
          set([kint(F.bag, -1n)], player({ bag: { "-1": { id: "coin" } } })),
          set([kuint(F.names, 4294967295n)], player({ names: { 4294967295: "max" } })),
          set([kbool(F.flags, false)], player({ flags: { false: 7 } })),
        ],
        with_({
          counters: { kills: 3, deaths: 1, wins: 0 },
          bag: { "7": { id: "gem", count: 1 }, "-1": { id: "coin" } },
          names: { 1: "one", 4294967295: "max" },
          flags: { true: 1, false: 7 },
        }),
      );
    });

    it("sets a field of a map's message value", () => {
      expectOps(BASE, [set([kint(F.bag, 7n), step(I.count)], item({ count: 9 }))], with_({ bag: { "7": { id: "gem", count: 9 } } }));
    });

    it("switches a oneof's case, and sets a field of its message", () => {
      const r = expectOps(BASE, [set([step(F.dragon)], player({ mount: { case: "dragon", value: { hp: 1 } } }))], with_({ mount: { case: "dragon", value: { hp: 1 } } }));
      r.apply(delta(11n, set([step(F.dragon), step(S.mp)], stats({ mp: 3 }))));
      expect(r.state.mount).toEqual({ case: "dragon", value: expect.objectContaining({ hp: 1, mp: 3 }) });
      r.apply(delta(12n, set([step(F.horse)], player({ mount: { case: "horse", value: "" } }))));
      expect(r.state.mount).toEqual({ case: "horse", value: "" });
    });
  });

  it("steps into an unset message, setting it (and its oneof's case) as Go's Mutable does", () => {
    expectOps(
      with_({ stats: undefined }),
      [set([step(F.stats), step(S.hp)], stats({ hp: 2 })), set([step(F.dragon), step(S.mp)], stats({ mp: 1 }))],
      with_({ stats: { hp: 2 }, mount: { case: "dragon", value: { mp: 1 } } }),
    );
  });

  describe("CLEAR", () => {
    it("resets fields to their defaults: scalars, an optional, a message, a list, a map, a oneof", () => {
      const r = expectOps(
        with_({ level: 3 }),
        [clear(step(F.name)), clear(step(F.level)), clear(step(F.stats)), clear(step(F.scores)), clear(step(F.bag)), clear(step(F.horse)), clear(step(F.class))],
        with_({ name: "", level: undefined, stats: undefined, scores: [], bag: {}, mount: { case: undefined }, class: Class.UNSPECIFIED }),
      );
      expect(r.state.level).toBeUndefined();
      expect(r.state.stats).toBeUndefined();
    });

    it("clears a field inside a list element or a map value", () => {
      expectOps(
        BASE,
        [clear(idx(F.items, 0), step(I.attrs)), clear(idx(F.items, 1), step(I.count)), clear(kint(F.bag, 7n), step(I.id))],
        with_({ items: [{ id: "sword", count: 1 }, { id: "potion" }], bag: { "7": { count: 1 } } }),
      );
    });
  });

  describe("MAP_DELETE", () => {
    it("removes keys of every kind", () => {
      expectOps(
        BASE,
        [del(kstr(F.counters, "kills")), del(kint(F.bag, 7n)), del(kuint(F.names, 1n)), del(kbool(F.flags, true)), del(idx(F.items, 0), kstr(I.attrs, "sharp"))],
        with_({ counters: { deaths: 1 }, bag: {}, names: {}, flags: {}, items: [{ id: "sword", count: 1 }, { id: "potion", count: 4 }] }),
      );
    });
  });

  describe("LIST_TRUNCATE and LIST_APPEND", () => {
    it("shorten and grow repeated scalar and message fields", () => {
      expectOps(
        BASE,
        [
          truncate(1, step(F.scores)),
          append([step(F.scores)], player({ scores: [7, 8] })),
          truncate(0, step(F.tags)),
          append([step(F.tags)], player({ tags: ["z"] })),
          truncate(1, step(F.items)),
          append([step(F.items)], player({ items: [{ id: "bow" }, {}] })),
          append([step(F.stats), step(S.buffs)], stats({ buffs: [3] })),
          truncate(2, step(F.scores)),
        ],
        with_({
          scores: [1, 7],
          tags: ["z"],
          items: [{ id: "sword", count: 1, attrs: { sharp: 3n } }, { id: "bow" }, {}],
          stats: { hp: 10, mp: 5, buffs: [1, 2, 3] },
        }),
      );
    });

    it("truncate to the same length changes nothing", () => {
      expectOps(BASE, [truncate(3, step(F.scores))], BASE);
    });
  });

  describe("versions", () => {
    it("throws GapError for a delta whose base is not the version, unchanged", () => {
      const r = replicaOf(BASE);
      const d = delta(11n, set([step(F.name)], player({ name: "x" })));
      let err: unknown;
      try {
        r.apply(d);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GapError);
      expect(err).toMatchObject({ entity: ENTITY, base: 11n, version: 10n });
      expect(r.version).toBe(10n);
      expect(r.state.name).toBe("ana");
      expect(r.synced).toBe(false);
      r.apply(delta(10n)); // held now, until a snapshot
      expect(r.version).toBe(10n);
    });

    it("moves the version with an empty delta", () => {
      const r = replicaOf(BASE);
      r.apply(delta(10n));
      expect(r.version).toBe(11n);
    });

    it("holds deltas until the first snapshot, then applies those after it", () => {
      const r = new Replica(PlayerSchema);
      const names: string[] = [];
      r.on("name", (_, p) => names.push(p.name));
      const d11 = delta(10n, set([step(F.name)], player({ name: "in the snapshot" })));
      const d12 = delta(11n, set([step(F.name)], player({ name: "after it" })));
      r.apply(d11); // pushes that overtook the reply to the subscribe
      r.apply(d12);
      expect(r.synced).toBe(false);
      expect(r.version).toBe(0n);
      expect(names).toEqual([]);
      r.apply(snapshot({ name: "in the snapshot" }, 11n));
      expect(r.synced).toBe(true);
      expect(r.version).toBe(12n);
      expect(names).toEqual(["in the snapshot", "after it"]);
    });

    it("skips a delta the state already holds", () => {
      const r = replicaOf(BASE);
      r.apply(delta(9n, set([step(F.name)], player({ name: "old" }))));
      r.apply(delta(10n, set([step(F.name)], player({ name: "new" }))));
      r.apply(delta(10n, set([step(F.name)], player({ name: "again" }))));
      expect(r.version).toBe(11n);
      expect(r.state.name).toBe("new");
    });

    it("finds a gap at the delta that ends a subscription (base 0)", () => {
      const r = replicaOf(BASE);
      expect(() => r.apply(create(DeltaSchema, { entity: ENTITY }))).toThrow(GapError);
      expect(r.synced).toBe(false);
    });

    it("after a gap, holds deltas until a snapshot, and applies them after it", () => {
      const r = replicaOf(BASE);
      expect(() => r.apply(delta(11n))).toThrow(GapError);
      r.apply(delta(10n, set([step(F.name)], player({ name: "half" })), set([step(F.name), step(1)], new Uint8Array()))); // held
      expect(r.state.name).toBe("ana");
      expect(() => r.apply(snapshot(BASE, 10n))).toThrow(DeltaError); // the held delta's bad op
      expect(r.state.name).toBe("half");
      expect(r.synced).toBe(false);
      r.apply(delta(10n, set([step(F.name)], player({ name: "x" })), set([step(F.name), step(1)], new Uint8Array()))); // held
      r.apply(delta(11n, set([step(F.name)], player({ name: "y" })))); // held
      r.apply(snapshot(BASE, 12n)); // holds both: they are skipped
      expect(r.synced).toBe(true);
      expect(r.version).toBe(12n);
      expect(r.state.name).toBe("ana");
      r.apply(delta(12n));
      expect(r.version).toBe(13n);
    });

    it("throws DeltaError at a bad op, with the ops before it applied and their callbacks called", () => {
      const r = replicaOf(BASE);
      const paths: string[] = [];
      r.on("", (p) => paths.push(p));
      expect(() => r.apply(delta(10n, set([step(F.name)], player({ name: "half" })), set([step(F.name), step(1)], new Uint8Array())))).toThrow(DeltaError);
      expect(r.synced).toBe(false);
      expect(r.version).toBe(10n);
      expect(r.state.name).toBe("half");
      expect(paths).toEqual(["name"]);
    });

    it("desync holds deltas until the next snapshot, even of versions it would skip", () => {
      const r = replicaOf(BASE); // version 10
      r.desync();
      expect(r.synced).toBe(false);
      r.apply(delta(1n, set([step(F.name)], player({ name: "new" })))); // 1 → 2: held
      r.apply(snapshot({ name: "old" }, 1n));
      expect(r.version).toBe(2n);
      expect(r.state.name).toBe("new");
    });

    it("gives up holding deltas after MAX_PENDING with no snapshot", () => {
      const r = new Replica(PlayerSchema);
      for (let i = 0; i < MAX_PENDING; i++) r.apply(delta(BigInt(i)));
      expect(() => r.apply(delta(1000n))).toThrow(GapError);
      r.apply(snapshot(BASE, 5n));
      expect(r.version).toBe(5n); // none held any more
    });

    it("refuses a delta of another entity", () => {
      const r = replicaOf(BASE);
      expect(() => r.apply({ ...delta(10n), entity: "player/u2" })).toThrow(/player\/u2/);
    });
  });

  describe("callbacks", () => {
    /** records the paths each prefix fires for. */
    function record(r: Replica<Player>, ...prefixes: string[]): Record<string, string[]> {
      const got: Record<string, string[]> = {};
      for (const p of prefixes) {
        got[p] = [];
        r.on(p, (path, state) => {
          expect(state).toBe(r.state);
          got[p]!.push(path);
        });
      }
      return got;
    }

    it("fire once per changed path at or under the prefix, after the whole delta", () => {
      const r = replicaOf(BASE);
      const got = record(r, "", "stats", "stats.hp", "items", "items.count", "bag", "name", "dragon");
      let seen = "";
      r.on("stats.hp", (_, s) => (seen = `${s.stats?.hp} ${s.name}`));
      r.apply(
        delta(
          10n,
          set([step(F.stats), step(S.hp)], stats({ hp: 3 })),
          set([step(F.stats), step(S.mp)], stats({ mp: 3 })),
          set([idx(F.items, 0), step(I.count)], item({ count: 5 })),
          set([idx(F.items, 1), step(I.count)], item({ count: 6 })),
          del(kint(F.bag, 7n)),
          set([step(F.dragon)], player({ mount: { case: "dragon", value: {} } })),
          set([step(F.name)], player({ name: "last" })),
        ),
      );
      expect(seen).toBe("3 last");
      expect(got).toEqual({
        "": ["stats.hp", "stats.mp", "items.count", "bag", "dragon", "name"],
        stats: ["stats.hp", "stats.mp"],
        "stats.hp": ["stats.hp"],
        items: ["items.count"],
        "items.count": ["items.count"],
        bag: ["bag"],
        name: ["name"],
        dragon: ["dragon"],
      });
    });

    it("fire for a change above the prefix with their prefix; a snapshot fires them all, with their prefix", () => {
      const r = replicaOf(BASE);
      const got = record(r, "stats.hp", "items.attrs", "");
      r.apply(delta(10n, set([step(F.stats)], player({ stats: { hp: 1 } })), truncate(0, step(F.items))));
      expect(got).toEqual({ "stats.hp": ["stats.hp"], "items.attrs": ["items.attrs"], "": ["stats", "items"] });
      r.apply(snapshot(BASE, 30n));
      expect(got).toEqual({ "stats.hp": ["stats.hp", "stats.hp"], "items.attrs": ["items.attrs", "items.attrs"], "": ["stats", "items", ""] });
    });

    it("stop after unregistering, and report a throw to onError", () => {
      const errs: unknown[] = [];
      const r = new Replica(PlayerSchema, { onError: (e) => errs.push(e) });
      r.apply(snapshot({}, 0n));
      const calls: string[] = [];
      const off = r.on("name", (p) => calls.push(p));
      r.on("name", () => {
        throw new Error("boom");
      });
      r.on("name", (p) => calls.push("after " + p));
      r.apply(delta(0n, set([step(F.name)], player({ name: "a" }))));
      off();
      off();
      r.apply(delta(1n, set([step(F.name)], player({ name: "b" }))));
      expect(calls).toEqual(["name", "after name", "after name"]);
      expect(errs).toHaveLength(2);
      expect(r.version).toBe(2n);
    });

    it("refuse a prefix that names no field", () => {
      const r = new Replica(PlayerSchema);
      expect(() => r.on("stats.hpp", () => {})).toThrow(TypeError);
      expect(() => r.on("name.x", () => {})).toThrow(TypeError);
      expect(() => r.on("stats.", () => {})).toThrow(TypeError);
      expect(() => r.on("mount", () => {})).toThrow(TypeError); // a oneof is not a field: its members are
      expect(() => r.on("secret_x", () => {})).toThrow(TypeError);
      expect(() => r.on("items.bonus.buffs", () => {})).not.toThrow();
      expect(() => r.on("bag.attrs", () => {})).not.toThrow();
      expect(() => r.on("stats.hp", () => {})).not.toThrow();
    });
  });

  it("skips ops on fields it does not know (a server built from a newer .proto), applying the others", () => {
    const r = replicaOf(BASE);
    const paths: string[] = [];
    r.on("", (p) => paths.push(p));
    r.apply(delta(10n, set([step(99)], new Uint8Array()), clear(step(F.stats), step(99)), set([step(F.name)], player({ name: "newer" }))));
    expect(r.synced).toBe(true);
    expect(r.version).toBe(11n);
    expect(r.state.name).toBe("newer");
    expect(paths).toEqual(["name"]);
  });

  describe("bad ops", () => {
    const cases: [string, Op, RegExp][] = [
      ["an empty path", set([], player({ name: "x" })), /path is empty/],
      ["a step into a scalar", set([step(F.name), step(1)], new Uint8Array()), /only messages/],
      ["a step into a list of scalars", set([idx(F.scores, 0), step(1)], new Uint8Array()), /only messages/],
      ["an index out of range", set([idx(F.scores, 3)], player({ scores: [1] })), /out of range/],
      ["an index out of range on the way", set([idx(F.items, 2), step(I.count)], item({ count: 1 })), /out of range/],
      ["a list step without an index", set([step(F.items), step(I.count)], item({ count: 1 })), /needs an index/],
      ["a key on a list", set([kstr(F.scores, "a")], player({ scores: [1] })), /needs an index/],
      ["an index on a singular field", set([idx(F.name, 0)], player({ name: "x" })), /singular/],
      ["an index on a singular message", set([idx(F.stats, 0), step(S.hp)], stats({ hp: 1 })), /singular/],
      ["a key of the wrong kind", set([kint(F.counters, 1n)], player({ counters: { 1: 1 } })), /needs key_string/],
      ["a signed key for unsigned keys", del(kint(F.names, 1n)), /needs key_uint/],
      ["a key out of range", del(kuint(F.names, 4294967296n)), /out of the range/],
      ["a missing key on the way", set([kint(F.bag, 8n), step(I.count)], item({ count: 1 })), /no such key/],
      ["an entry with another key", set([kstr(F.counters, "a")], player({ counters: { b: 1 } })), /key b/],
      ["two entries", set([kstr(F.counters, "a")], player({ counters: { a: 1, b: 2 } })), /2 entries/],
      ["two elements", set([idx(F.scores, 0)], player({ scores: [1, 2] })), /2 elements/],
      ["no element", set([idx(F.scores, 0)], new Uint8Array()), /0 elements/],
      ["a value of another field", set([step(F.name)], player({ gold: 1n })), /sets gold, not name/],
      ["a value with an unknown field", set([step(F.name)], new Uint8Array([0xf8, 0x06, 0x01])), /unknown/],
      ["a value that does not decode", set([step(F.name)], new Uint8Array([0x0a, 0x05, 0x61])), /does not decode/],
      ["a value of the wrong wire type", set([step(F.gold)], new Uint8Array([0x12, 0x01, 0x61])), /does not decode/],
      ["MAP_DELETE of a list", del(idx(F.scores, 0)), /MAP_DELETE of scores/],
      ["MAP_DELETE without a key", del(step(F.counters)), /needs key_string/],
      ["LIST_TRUNCATE of a map", truncate(0, step(F.counters)), /LIST_TRUNCATE of counters/],
      ["LIST_TRUNCATE longer", truncate(4, step(F.scores)), /to 4 elements: it has 3/],
      ["LIST_TRUNCATE of an element", truncate(0, idx(F.scores, 0)), /whole list/],
      ["LIST_APPEND to a scalar", append([step(F.name)], player({ name: "x" })), /LIST_APPEND to name/],
      ["LIST_APPEND with another field", append([step(F.scores)], player({ tags: ["x"] })), /sets tags/],
      ["CLEAR of an element", clear(idx(F.scores, 0)), /CLEAR names a whole field/],
      ["CLEAR of a map value", clear(kint(F.bag, 7n)), /CLEAR names a whole field/],
      ["MAP_DELETE of a key that is not there", del(kstr(F.counters, "none")), /not there/],
      ["an unknown kind", create(OpSchema, { kind: 9 as propsync.Op_Kind, path: [step(F.name)] }), /unknown op kind 9/],
    ];
    it.each(cases)("%s throws DeltaError", (_, op, msg) => {
      const r = replicaOf(BASE);
      let err: unknown;
      try {
        r.apply(delta(10n, op));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DeltaError);
      expect((err as DeltaError).op).toBe(0);
      expect((err as Error).message).toMatch(msg);
      expect((err as Error).message).toMatch(/^propsync: player\/u1 version 11: op 0 \(/);
      expect(r.synced).toBe(false);
      expect(r.version).toBe(10n);
    });
  });
});

describe("random ops", () => {
  /** mulberry32: a small seeded PRNG, so that a failure replays. */
  function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it("either apply or throw DeltaError, never anything else", () => {
    const rand = rng(18);
    const int = (n: number) => Math.floor(rand() * n);
    const fields = [1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 30, 31, 1, 2, 3, 4, 99];
    const values = [
      new Uint8Array(),
      player({ name: "v" }),
      player({ scores: [1, 2] }),
      player({ items: [{ id: "i" }] }),
      player({ counters: { k: 1 } }),
      player({ bag: { "7": { id: "b" } } }),
      player({ mount: { case: "dragon", value: { hp: 1 } } }),
      stats({ hp: 1, buffs: [1] }),
      item({ count: 1, attrs: { sharp: 1n } }),
      new Uint8Array([0xff, 0xff, 0xff]),
      new Uint8Array([0x0a, 0x02, 0x08]),
    ];
    const at = (): Step["at"] => {
      switch (int(7)) {
        case 0:
        case 1:
          return { case: undefined };
        case 2:
          return { case: "index", value: int(4) };
        case 3:
          return { case: "keyString", value: ["sharp", "kills", "x"][int(3)]! };
        case 4:
          return { case: "keyInt", value: BigInt(int(9) - 1) };
        case 5:
          return { case: "keyUint", value: BigInt(int(3)) };
        default:
          return { case: "keyBool", value: int(2) === 0 };
      }
    };
    let applied = 0;
    for (let i = 0; i < 2000; i++) {
      const r = replicaOf(BASE);
      const path = Array.from({ length: 1 + int(3) }, () => step(fields[int(fields.length)]!, at()));
      const op = create(OpSchema, { kind: int(7) as propsync.Op_Kind, path, value: values[int(values.length)]!, length: int(5) });
      try {
        r.apply(delta(10n, op));
        applied++;
        expect(r.synced).toBe(true);
      } catch (e) {
        if (!(e instanceof DeltaError)) throw new Error(`op ${i}: ${String(e)}: ${JSON.stringify(op, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
        expect(r.synced).toBe(false);
      }
    }
    expect(applied).toBeGreaterThan(20); // some fit
  });
});
