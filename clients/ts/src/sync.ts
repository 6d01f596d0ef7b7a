import { create, fromBinary, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import type { Client, ReconnectEvent } from "./client.js";
import { Code } from "./codes.js";
import { GuildError } from "./errors.js";
import { DeltaSchema, SubscribeSchema, UnsubscribeSchema, type Delta } from "./gen/propsync/propsyncpb/propsync_pb.js";
import { GapError, MAX_PENDING, Replica, type ChangeCallback } from "./replica.js";

/**
 * The route deltas are pushed on unless SubscribeReplicaOptions.pushRoute
 * says otherwise: the Go side's propsync.DefaultRoute.
 */
export const DEFAULT_PUSH_ROUTE = "propsync";

export interface SubscribeReplicaOptions {
  /**
   * Subscribe.entity: the state to subscribe to, when the route does not
   * name it. Also the entity whose pushed deltas are applied (others on
   * the push route are ignored); default the entity of the snapshot.
   */
  entity?: string;
  /** The route the server pushes Deltas on. Default "propsync" (DEFAULT_PUSH_ROUTE). */
  pushRoute?: string;
  /** A route to send Unsubscribe to on close(). Default none: close() only stops listening. */
  unsubscribeRoute?: string;
  /** How long each Subscribe request waits for its snapshot, in ms. Default the client's requestTimeoutMs. */
  timeoutMs?: number;
  /**
   * Called when the subscription subscribes again: after a gap (GapError),
   * a delta that did not fit (DeltaError), or a reconnection that may not
   * have kept the session's pushes (its ReconnectEvent).
   */
  onResubscribe?(reason: GapError | Error | ReconnectEvent): void;
  /**
   * Called with what went wrong in the background: a Subscribe that failed
   * (it is tried again, backing off up to 5 s), a DeltaError, a push that
   * does not decode, a change callback that threw. Default console.error.
   */
  onError?(err: unknown): void;
}

/** A replica kept in sync over a client. Get one from subscribeReplica. */
export interface ReplicaSubscription<T extends Message> {
  /** The replica: its state, version and callbacks. */
  readonly replica: Replica<T>;
  /** The state (replica.state). Read it, do not change it. */
  readonly state: T;
  /** replica.on: registers a change callback; see Replica.on. */
  on(prefix: string, callback: ChangeCallback<T>): () => void;
  /**
   * close stops applying pushes and subscribing again and, with
   * unsubscribeRoute, sends Unsubscribe (it rejects when that fails). Safe
   * to call more than once.
   */
  close(): Promise<void>;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;

/**
 * subscribeReplica subscribes to a synced state: it sends a
 * propsync.Subscribe request to route, applies the snapshot in the reply
 * to a Replica, and then the Deltas pushed on the push route. It subscribes
 * again by itself, for a fresh snapshot, when a delta is missing (or the
 * server ended the subscription), when one does not fit, and after a
 * reconnection that may have lost pushes (a new session, a resumed one
 * that reports resync or that has another sessionId). It resolves once the first snapshot is applied, and
 * rejects with the first Subscribe's error.
 *
 * Pass a Replica instead of a schema to have callbacks registered before
 * the first snapshot.
 *
 * ```ts
 * const sub = await subscribeReplica(client, "player.Sync", PlayerSchema);
 * sub.on("stats.hp", (_, p) => drawHp(p.stats?.hp ?? 0));
 * console.log(sub.state.name);
 * ```
 */
export async function subscribeReplica<T extends Message>(
  client: Client,
  route: string,
  schema: GenMessage<T> | DescMessage | Replica<T>,
  options?: SubscribeReplicaOptions,
): Promise<ReplicaSubscription<T>> {
  const onError = options?.onError ?? ((e: unknown) => console.error("guild: replica subscription:", e));
  const replica = schema instanceof Replica ? schema : new Replica<T>(schema, { onError });
  const sub = new Subscription<T>(client, route, replica, options ?? {}, onError);
  await sub.start();
  return sub;
}

class Subscription<T extends Message> implements ReplicaSubscription<T> {
  /** The entity whose deltas apply; undefined until known (opts.entity or the first snapshot). */
  private entity: string | undefined;
  /** Deltas pushed before the entity was known. */
  private early: Delta[] = [];
  private closed = false;
  /** A Subscribe is in flight. */
  private subscribing = false;
  /** Subscribe again when the one in flight is done: something happened meanwhile. */
  private again = false;
  private retryMs = RETRY_MIN_MS;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** The session of the last Subscribe answered. */
  private session = "";
  private readonly offPush: () => void;
  private readonly offReconnect: () => void;

  constructor(
    private readonly client: Client,
    private readonly route: string,
    readonly replica: Replica<T>,
    private readonly opts: SubscribeReplicaOptions,
    private readonly onError: (err: unknown) => void,
  ) {
    this.entity = opts.entity || undefined;
    this.offPush = client.onPushRaw(opts.pushRoute ?? DEFAULT_PUSH_ROUTE, (body) => this.pushed(body));
    this.offReconnect = client.onReconnect((e) => {
      // The server pushes to the session that subscribed: a new session, a
      // resumed one under another ID (on another gateway) or one whose
      // pushes were dropped needs a new subscription and snapshot.
      if (!e.resumed || e.resync || client.sessionId !== this.session) this.resubscribe(e);
    });
  }

  get state(): T {
    return this.replica.state;
  }

  on(prefix: string, callback: ChangeCallback<T>): () => void {
    return this.replica.on(prefix, callback);
  }

  async start(): Promise<void> {
    this.subscribing = true;
    let reply: Delta;
    try {
      reply = await this.fetch();
    } catch (e) {
      this.subscribing = false;
      this.stop();
      throw e;
    }
    this.settle(reply);
  }

  /** fetch sends a Subscribe and returns the snapshot in the reply. */
  private async fetch(): Promise<Delta> {
    const reply = await this.client.request(this.route, SubscribeSchema, { entity: this.opts.entity ?? "" }, DeltaSchema, {
      timeoutMs: this.opts.timeoutMs,
    });
    if (!reply.isSnapshot) {
      throw new GuildError(Code.DataLoss, `${this.route}: the reply to Subscribe is not a snapshot`);
    }
    this.session = this.client.sessionId;
    return reply;
  }

  /** snapshot applies the reply to a Subscribe, then the deltas that came before the entity was known. */
  private snapshot(d: Delta): void {
    if (this.closed) return;
    if (this.entity === undefined) this.entity = d.entity;
    this.apply(d);
    const early = this.early;
    this.early = [];
    for (const e of early) this.delta(e);
  }

  private pushed(body: Uint8Array): void {
    if (this.closed) return;
    let d: Delta;
    try {
      d = fromBinary(DeltaSchema, body);
    } catch (e) {
      this.onError(new GuildError(Code.DataLoss, `push ${this.opts.pushRoute ?? DEFAULT_PUSH_ROUTE}: not a propsync Delta: ${(e as Error)?.message ?? e}`));
      return;
    }
    this.delta(d);
  }

  private delta(d: Delta): void {
    if (this.entity === undefined) {
      if (this.early.length >= MAX_PENDING) this.early.shift();
      this.early.push(d);
      return;
    }
    if (this.entity !== "" && d.entity !== this.entity) return; // another subscription's
    this.apply(d);
  }

  private apply(d: Delta): void {
    try {
      this.replica.apply(d);
    } catch (e) {
      if (!(e instanceof GapError)) this.onError(e);
      this.resubscribe(e as Error);
    }
  }

  /** resubscribe sends a Subscribe again (after the one in flight, if any). */
  private resubscribe(reason: GapError | Error | ReconnectEvent): void {
    if (this.closed) return;
    this.replica.desync(); // hold what comes until the snapshot
    try {
      this.opts.onResubscribe?.(reason);
    } catch (e) {
      this.onError(e);
    }
    if (this.subscribing || this.retryTimer !== undefined) {
      this.again = true;
      return;
    }
    void this.run();
  }

  private async run(): Promise<void> {
    this.subscribing = true;
    this.again = false;
    let reply: Delta;
    try {
      reply = await this.fetch();
    } catch (e) {
      this.subscribing = false;
      if (this.closed || this.client.closed) return;
      this.onError(e);
      this.retry();
      return;
    }
    this.settle(reply);
  }

  /**
   * settle applies the snapshot in the reply to a Subscribe, then
   * subscribes again if something happened meanwhile (at once) or if the
   * replica is not synced after it (its held deltas did not fit, or it did
   * not decode: backing off).
   */
  private settle(reply: Delta): void {
    // Still subscribing: what the snapshot's held deltas throw only marks
    // "again", and the replica's state decides below.
    try {
      this.snapshot(reply);
    } finally {
      this.subscribing = false;
    }
    if (this.closed || this.client.closed) return;
    if (!this.replica.synced) {
      this.retry();
      return;
    }
    this.retryMs = RETRY_MIN_MS;
    if (this.again) void this.run();
  }

  /** retry subscribes again after a while, backing off. */
  private retry(): void {
    if (this.retryTimer !== undefined) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(2 * this.retryMs, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed && !this.client.closed) void this.run();
    }, wait);
  }

  private stop(): void {
    this.closed = true;
    this.offPush();
    this.offReconnect();
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stop();
    if (this.opts.unsubscribeRoute !== undefined) {
      await this.client.requestRaw(this.opts.unsubscribeRoute, toBinary(UnsubscribeSchema, create(UnsubscribeSchema, { entity: this.entity ?? "" })));
    }
  }
}
