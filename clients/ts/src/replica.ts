import { create, fromBinary, ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { reflect, type ReflectList, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { Op_Kind, type Delta, type Op, type Step } from "./gen/propsync/propsyncpb/propsync_pb.js";

/**
 * GapError is thrown by Replica.apply for a delta that does not start at the
 * replica's version (base ≠ version): a delta was missed, or the
 * subscription ended (the server's state moved or stopped, and sent a delta
 * of base 0), the Go side's ErrGap. The replica's state is unchanged; it is
 * no longer synced: a new Subscribe request brings a snapshot.
 */
export class GapError extends Error {
  override readonly name = "GapError";
  constructor(
    /** The delta's entity. */
    readonly entity: string,
    /** The version the delta applies to. */
    readonly base: bigint,
    /** The replica's version. */
    readonly version: bigint,
    why = `the replica is at version ${version}, the delta applies to ${base}`,
  ) {
    super(`propsync: ${entity || "delta"}: ${why}: a delta was missed, subscribe again for a snapshot`);
  }
}

/**
 * DeltaError is thrown by Replica.apply for a delta that does not fit the
 * replica's schema or state: an unknown field, an index out of range, a key
 * that is not there, a step of the wrong kind, a value that does not decode
 * (the Go side's ErrBadOp). The replica holds the ops before the bad one
 * and is no longer synced: subscribe again.
 */
export class DeltaError extends Error {
  override readonly name = "DeltaError";
  constructor(
    message: string,
    /** The index of the op in Delta.ops, or -1 for the snapshot. */
    readonly op: number,
  ) {
    super(message);
  }
}

/**
 * Called after a delta is applied, once per changed path that matches the
 * prefix it was registered with (see Replica.on), with the state afterwards.
 */
export type ChangeCallback<T> = (path: string, state: T) => void;

export interface ReplicaOptions {
  /** Called when a change callback throws. Default console.error. */
  onError?(err: unknown): void;
}

interface Listener<T> {
  prefix: string;
  callback: ChangeCallback<T>;
}

/** How many deltas a replica holds while it waits for its snapshot, as the Go side's. */
export const MAX_PENDING = 256;

/**
 * Replica mirrors a synced server-side state (propsync.proto): a snapshot
 * replaces it, and each delta after it applies its ops in order. It
 * behaves as the Go package propsync's Replica:
 *
 * - Deltas that arrive while it is not synced (before its first snapshot,
 *   or after a GapError or DeltaError; a push can overtake the reply to a
 *   Subscribe) are held, up to MAX_PENDING, and applied after the next
 *   snapshot; those the snapshot already holds are skipped.
 * - A delta whose version is not above the replica's is skipped (the
 *   snapshot held it); one whose base is not the replica's version throws
 *   GapError: subscribe again for a snapshot.
 *
 * ```ts
 * const r = new Replica(PlayerSchema);
 * r.on("stats.hp", (path, p) => draw(p.stats?.hp));
 * r.apply(snapshot); // a Delta with isSnapshot, e.g. the reply to Subscribe
 * r.apply(delta);    // throws GapError when delta.base !== r.version
 * ```
 *
 * Paths name fields by their JSON names from the root down, without list
 * indices or map keys: "stats.hp", "items.count", "bag". subscribeReplica
 * keeps a Replica in sync over a Client.
 */
export class Replica<T extends Message = Message> {
  /** The state's message type. */
  readonly schema: DescMessage;
  private readonly _state: T;
  private _version = 0n;
  private _entity = "";
  private _synced = false;
  private pending: Delta[] = [];
  private readonly listeners = new Set<Listener<T>>();
  private readonly onError: (err: unknown) => void;

  /** A new replica is at version 0, with an empty state, and not synced: it waits for a snapshot. */
  constructor(schema: GenMessage<T> | DescMessage, options?: ReplicaOptions) {
    this.schema = schema;
    this._state = create(schema) as unknown as T;
    this.onError = options?.onError ?? ((e) => console.error("guild: replica callback threw:", e));
  }

  /** The state. Read it, do not change it. A snapshot keeps this object and replaces its fields. */
  get state(): T {
    return this._state;
  }

  /** The version of the state: of the last snapshot or delta applied; 0 before the first snapshot. */
  get version(): bigint {
    return this._version;
  }

  /** The entity of the last snapshot, "" before one. */
  get entity(): string {
    return this._entity;
  }

  /** Whether the replica has a snapshot and has missed or refused no delta since. */
  get synced(): boolean {
    return this._synced;
  }

  /**
   * apply applies a snapshot or a delta, then calls the callbacks (see on).
   * It throws GapError when a delta is missing (the replica is unchanged)
   * and DeltaError when an op does not fit (the ops before it are applied,
   * and their callbacks called); either way the replica is no longer
   * synced: subscribe again. A snapshot that does not decode throws
   * DeltaError and leaves the state as it was.
   */
  apply(delta: Delta): void {
    if (delta.isSnapshot) {
      this.applySnapshot(delta);
      this.fire([""]);
      const pending = this.pending;
      this.pending = [];
      for (const d of pending) this.apply(d);
      return;
    }
    if (!this._synced) {
      if (this.pending.length >= MAX_PENDING) {
        this.pending = [];
        throw new GapError(delta.entity, delta.base, this._version, `${MAX_PENDING} deltas came with no snapshot`);
      }
      this.pending.push(delta);
      return;
    }
    if (this._entity !== "" && delta.entity !== this._entity) {
      this.unsync();
      throw new DeltaError(`propsync: a delta of ${JSON.stringify(delta.entity)} for the replica of ${this._entity}`, -1);
    }
    if (delta.base !== 0n && delta.version <= this._version) return; // the snapshot held it
    if (delta.base !== this._version) {
      this.unsync();
      throw new GapError(delta.entity, delta.base, this._version);
    }
    const paths: string[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < delta.ops.length; i++) {
      const op = delta.ops[i]!;
      let path: string;
      try {
        path = applyOp(reflect(this.schema, this._state), op);
      } catch (e) {
        if (e instanceof NewerField) continue; // a field of a newer build: skipped, as protobuf skips unknown fields
        this.unsync();
        this.fire(paths);
        const msg = e instanceof Error ? e.message : String(e);
        throw new DeltaError(`propsync: ${delta.entity || "delta"} version ${delta.version}: op ${i} (${Op_Kind[op.kind] ?? op.kind} ${describePath(this.schema, op.path)}): ${msg}`, i);
      }
      if (!seen.has(path)) {
        seen.add(path);
        paths.push(path);
      }
    }
    this._version = delta.version;
    this.fire(paths);
  }

  /**
   * desync marks the replica not synced, as a gap does: it holds the deltas
   * that come until the next snapshot. For a client that asks for a
   * snapshot again on its own (subscribeReplica after a reconnection): the
   * deltas of the new subscription may overtake the snapshot, and their
   * versions may start again from 1.
   */
  desync(): void {
    if (this._synced) this.unsync();
  }

  private unsync(): void {
    this._synced = false;
    this.pending = [];
  }

  private applySnapshot(delta: Delta): void {
    let fresh: ReflectMessage;
    try {
      fresh = reflect(this.schema, fromBinary(this.schema, delta.snapshot));
    } catch (e) {
      this._synced = false;
      throw new DeltaError(`propsync: ${delta.entity || "snapshot"} version ${delta.version}: the snapshot does not decode as ${this.schema.typeName}: ${(e as Error)?.message ?? e}`, -1);
    }
    // Keep the state's identity: copy the fields into it.
    const target = reflect(this.schema, this._state);
    for (const f of this.schema.fields) {
      if (fresh.isSet(f)) target.set(f, fresh.get(f));
      else target.clear(f);
    }
    target.setUnknown(fresh.getUnknown() ?? []);
    this._version = delta.version;
    this._entity = delta.entity;
    this._synced = true;
  }

  /**
   * on calls callback after each delta, once per changed path at or under
   * prefix (prefix itself, or prefix + "." and more: "stats" fires for
   * "stats.hp"), and once after each snapshot, which changes everything,
   * with prefix as the path. The prefix "" matches every change. A change
   * above the prefix (a message set or cleared whole: "stats" for the
   * prefix "stats.hp") fires it too, with prefix as the path, since what
   * it names changed. These are the Go package propsync's OnChange rules. on throws a TypeError for a prefix that names no field
   * of the schema. It returns a function that unregisters the callback.
   */
  on(prefix: string, callback: ChangeCallback<T>): () => void {
    checkPrefix(this.schema, prefix);
    const l: Listener<T> = { prefix, callback };
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  }

  /** fire calls the callbacks for the paths changed; "" stands for all. */
  private fire(paths: readonly string[]): void {
    if (this.listeners.size === 0) return;
    const listeners = [...this.listeners];
    for (const path of paths) {
      for (const l of listeners) {
        if (!this.listeners.has(l)) continue;
        let p: string;
        if (path === "") p = l.prefix;
        else if (pathMatches(l.prefix, path)) p = path;
        else if (pathMatches(path, l.prefix)) p = l.prefix; // a message above the prefix changed whole
        else continue;
        try {
          l.callback(p, this._state);
        } catch (e) {
          try {
            this.onError(e);
          } catch {
            // Nowhere left to report it.
          }
        }
      }
    }
  }
}

/**
 * pathMatches reports whether a change at path fires a callback registered
 * on prefix: path is prefix or lies under it.
 */
export function pathMatches(prefix: string, path: string): boolean {
  return prefix === "" || path === prefix || (path.length > prefix.length && path.startsWith(prefix) && path[prefix.length] === ".");
}

function checkPrefix(schema: DescMessage, prefix: string): void {
  if (prefix === "") return;
  let msg: DescMessage | undefined = schema;
  for (const name of prefix.split(".")) {
    if (!msg) throw new TypeError(`propsync: ${prefix}: ${name} is below a field that holds no message`);
    const f: DescField | undefined = msg.fields.find((x) => x.jsonName === name);
    if (!f) throw new TypeError(`propsync: ${prefix}: ${msg.typeName} has no field with the JSON name ${name}`);
    msg = f.message;
  }
}

/** describePath names an op's path for an error message, as far as it resolves. */
function describePath(schema: DescMessage, path: readonly Step[]): string {
  const parts: string[] = [];
  let msg: DescMessage | undefined = schema;
  for (const s of path) {
    const f: DescField | undefined = msg?.fields.find((x) => x.number === s.field);
    let part = f ? f.jsonName : `#${s.field}`;
    switch (s.at.case) {
      case "index":
        part += `[${s.at.value}]`;
        break;
      case "keyString":
        part += `[${JSON.stringify(s.at.value)}]`;
        break;
      case "keyInt":
      case "keyUint":
      case "keyBool":
        part += `[${s.at.value}]`;
        break;
    }
    parts.push(part);
    msg = f?.message;
  }
  return parts.length === 0 ? "(empty path)" : parts.join(".");
}

type ListField = DescField & { fieldKind: "list" };
type MapField = DescField & { fieldKind: "map" };

/**
 * NewerField is thrown by stepField for a field number the schema does not
 * have: an op from a server built from a newer .proto (it added a field,
 * during a rolling upgrade). apply skips such an op instead of failing.
 */
class NewerField extends Error {}

function stepField(m: ReflectMessage, s: Step): DescField {
  const f = m.findNumber(s.field);
  if (!f) throw new NewerField(`${m.desc.typeName} has no field ${s.field}`);
  return f;
}

function listIndex(list: ReflectList, f: ListField, s: Step): number {
  if (s.at.case !== "index") throw new Error(`${f.name} is a repeated field: the step needs an index, not ${s.at.case ?? "nothing"}`);
  const i = s.at.value;
  if (i >= list.size) throw new Error(`${f.name}[${i}]: index out of range (length ${list.size})`);
  return i;
}

const INT32_KEYS: ReadonlySet<ScalarType> = new Set([ScalarType.INT32, ScalarType.SINT32, ScalarType.SFIXED32]);
const INT64_KEYS: ReadonlySet<ScalarType> = new Set([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64]);
const UINT32_KEYS: ReadonlySet<ScalarType> = new Set([ScalarType.UINT32, ScalarType.FIXED32]);
const UINT64_KEYS: ReadonlySet<ScalarType> = new Set([ScalarType.UINT64, ScalarType.FIXED64]);

/** mapKey returns the key of a step into map field f, as protobuf-es represents keys of its type. */
function mapKey(f: MapField, s: Step): unknown {
  const t = f.mapKey;
  const at = s.at;
  const want = (kind: string) => new Error(`${f.name} is a map with ${ScalarType[t].toLowerCase()} keys: the step needs ${kind}, not ${at.case ?? "nothing"}`);
  if (t === ScalarType.STRING) {
    if (at.case !== "keyString") throw want("key_string");
    return at.value;
  }
  if (t === ScalarType.BOOL) {
    if (at.case !== "keyBool") throw want("key_bool");
    return at.value;
  }
  if (INT32_KEYS.has(t) || INT64_KEYS.has(t)) {
    if (at.case !== "keyInt") throw want("key_int");
    if (INT64_KEYS.has(t)) return at.value;
    if (at.value < -2147483648n || at.value > 2147483647n) throw new Error(`${f.name}: key ${at.value} is out of the range of int32`);
    return Number(at.value);
  }
  if (UINT32_KEYS.has(t) || UINT64_KEYS.has(t)) {
    if (at.case !== "keyUint") throw want("key_uint");
    if (UINT64_KEYS.has(t)) return at.value;
    if (at.value > 4294967295n) throw new Error(`${f.name}: key ${at.value} is out of the range of uint32`);
    return Number(at.value);
  }
  throw new Error(`${f.name}: map keys of type ${ScalarType[t]} are not supported`);
}

/**
 * descend follows a step that selects a message: a singular message field
 * (set to an empty one if it was unset, switching a oneof to it, as Go's
 * Mutable does), an element of a repeated message field or a value of a
 * map of messages (which must be there).
 */
function descend(m: ReflectMessage, s: Step): ReflectMessage {
  const f = stepField(m, s);
  switch (f.fieldKind) {
    case "message":
      if (s.at.case !== undefined) throw new Error(`${f.name} is a singular field: the step has ${s.at.case}`);
      if (!m.isSet(f)) m.set(f, reflect(f.message, create(f.message)));
      return m.get(f);
    case "list": {
      if (f.listKind !== "message") throw new Error(`${f.name} is a list of ${f.listKind}s: only messages can be stepped into`);
      const list = m.get(f);
      return list.get(listIndex(list, f, s)) as ReflectMessage;
    }
    case "map": {
      if (f.mapKind !== "message") throw new Error(`${f.name} is a map of ${f.mapKind}s: only messages can be stepped into`);
      const map = m.get(f);
      const k = mapKey(f, s);
      const v = map.get(k);
      if (v === undefined) throw new Error(`${f.name}[${String(k)}]: no such key`);
      return v as ReflectMessage;
    }
    default:
      throw new Error(`${f.name} is a ${f.fieldKind} field: only messages can be stepped into`);
  }
}

/**
 * applyOp applies op to root and returns the changed path (JSON names,
 * dotted). It throws an Error that says what does not fit.
 */
function applyOp(root: ReflectMessage, op: Op): string {
  if (op.path.length === 0) throw new Error("the path is empty");
  const names: string[] = [];
  // The messages on the way down, to store each back into its holder
  // afterwards: a value protobuf-es keeps in another form (a wrapper type,
  // a Struct) is copied by get(), and its changes land only when set back.
  const chain: { holder: ReflectMessage; step: Step; msg: ReflectMessage }[] = [];
  let m = root;
  for (const s of op.path.slice(0, -1)) {
    const next = descend(m, s);
    names.push(m.findNumber(s.field)!.jsonName);
    chain.push({ holder: m, step: s, msg: next });
    m = next;
  }
  const last = op.path[op.path.length - 1]!;
  const f = stepField(m, last);
  names.push(f.jsonName);
  applyLast(m, f, last, op);
  for (let i = chain.length - 1; i >= 0; i--) {
    const { holder, step, msg } = chain[i]!;
    const hf = holder.findNumber(step.field)!;
    if (hf.fieldKind === "message") holder.set(hf, msg);
    else if (hf.fieldKind === "list") holder.get(hf).set(step.at.value as number, msg);
    else if (hf.fieldKind === "map") holder.get(hf).set(mapKey(hf, step), msg);
  }
  return names.join(".");
}

/**
 * decodeField decodes op.value into an empty message of m's type and returns
 * it, checking that it holds nothing but field f.
 */
function decodeField(m: ReflectMessage, f: DescField, op: Op): ReflectMessage {
  let d: ReflectMessage;
  try {
    d = reflect(m.desc, fromBinary(m.desc, op.value));
  } catch (e) {
    throw new Error(`the value does not decode as ${m.desc.typeName}: ${(e as Error)?.message ?? e}`);
  }
  for (const other of m.desc.fields) {
    if (other !== f && d.isSet(other)) throw new Error(`the value sets ${other.name}, not ${f.name}`);
  }
  if ((d.getUnknown()?.length ?? 0) > 0) throw new Error(`the value holds fields unknown to ${m.desc.typeName}, not ${f.name}`);
  return d;
}

/** only returns the only element of a decoded list. */
function onlyElement(list: ReflectList, f: DescField): unknown {
  if (list.size !== 1) throw new Error(`the value holds ${list.size} elements of ${f.name}, not one`);
  return list.get(0);
}

function applyLast(m: ReflectMessage, f: DescField, s: Step, op: Op): void {
  switch (op.kind) {
    case Op_Kind.SET: {
      const d = decodeField(m, f, op);
      if (s.at.case === undefined) {
        if (d.isSet(f)) m.set(f, d.get(f));
        else m.clear(f); // a scalar without presence at its zero value encodes as nothing
        return;
      }
      if (f.fieldKind === "list") {
        const list = m.get(f);
        list.set(listIndex(list, f, s), onlyElement(d.get(f), f));
        return;
      }
      if (f.fieldKind === "map") {
        const k = mapKey(f, s);
        const dm = d.get(f);
        if (dm.size !== 1) throw new Error(`the value holds ${dm.size} entries of ${f.name}, not one`);
        const [[dk, dv]] = [...dm.entries()] as [[unknown, unknown]];
        if (String(dk) !== String(k)) throw new Error(`the value's entry has the key ${String(dk)}, the path ${String(k)}`);
        m.get(f).set(k, dv);
        return;
      }
      throw new Error(`${f.name} is a singular field: the step has ${s.at.case}`);
    }
    case Op_Kind.CLEAR: {
      if (s.at.case !== undefined) throw new Error(`CLEAR names a whole field: the step has ${s.at.case}`);
      m.clear(f);
      return;
    }
    case Op_Kind.MAP_DELETE: {
      if (f.fieldKind !== "map") throw new Error(`MAP_DELETE of ${f.name}, a ${f.fieldKind} field`);
      const k = mapKey(f, s);
      if (!m.get(f).delete(k)) throw new Error(`${f.name}[${String(k)}]: MAP_DELETE of a key that is not there`);
      return;
    }
    case Op_Kind.LIST_TRUNCATE: {
      if (f.fieldKind !== "list") throw new Error(`LIST_TRUNCATE of ${f.name}, a ${f.fieldKind} field`);
      if (s.at.case !== undefined) throw new Error(`LIST_TRUNCATE names the whole list: the step has ${s.at.case}`);
      const list = m.get(f);
      if (op.length > list.size) throw new Error(`LIST_TRUNCATE of ${f.name} to ${op.length} elements: it has ${list.size}`);
      const keep = [...list].slice(0, op.length);
      list.clear();
      for (const x of keep) list.add(x);
      return;
    }
    case Op_Kind.LIST_APPEND: {
      if (f.fieldKind !== "list") throw new Error(`LIST_APPEND to ${f.name}, a ${f.fieldKind} field`);
      if (s.at.case !== undefined) throw new Error(`LIST_APPEND names the whole list: the step has ${s.at.case}`);
      const d = decodeField(m, f, op);
      const list = m.get(f);
      for (const x of d.get(f)) list.add(x);
      return;
    }
    default:
      throw new Error(`unknown op kind ${op.kind}`);
  }
}
