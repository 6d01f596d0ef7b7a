import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code } from "./codes.js";
import { Conn, type Pending } from "./conn.js";
import { GuildError, unavailable } from "./errors.js";
import type { WebSocketConstructor } from "./websocket.js";

/** The client name sent in the Handshake unless ConnectOptions.clientName says otherwise. */
export const DEFAULT_CLIENT_NAME = "ts-sdk/0.1";

/**
 * Backoff between rounds of failed reconnection attempts: minMs, doubling up
 * to maxMs, less a random part of up to a half.
 */
export interface ReconnectOptions {
  /** The first wait, in ms. Default 100. */
  minMs?: number;
  /** The longest wait, in ms. Default 5000. */
  maxMs?: number;
}

/** What onReconnect is told. */
export interface ReconnectEvent {
  /** The gateway URL the client now uses. */
  url: string;
  /** The URL whose session ended (the same when there is one URL). */
  from: string;
  /** Why it ended: isGoingAway(cause) when that gateway shut down. */
  cause: GuildError | undefined;
  /** The connection attempts it took, this one included. */
  attempts: number;
  /**
   * The gateway gave the session back (its resume token, see PROTOCOL.md
   * section 3.8): same user, state and groups, and the pushes sent while the
   * client was away came first, in order. Otherwise the session is new (logged
   * in by token, or not at all). sessionId changes when the session resumed on
   * another gateway.
   */
  resumed: boolean;
  /** With resumed: some pushes were dropped while the client was away: fetch the state afresh. */
  resync: boolean;
}

export interface ConnectOptions {
  /**
   * The gateway's WebSocket URL, such as "ws://localhost:8080/ws". Shorthand
   * for urls with one URL; set one of the two.
   */
  url?: string;
  /**
   * Gateways of the same game, for failover: connect() tries them in order
   * until one accepts, and with reconnect the client moves to the next URL
   * when its session ends (round robin, starting after the one it leaves).
   */
  urls?: string[];
  /** Authenticates the session at once; sent again on every reconnection. */
  token?: string;
  /** Names this client in the gateway's logs. Default "ts-sdk/0.1". */
  clientName?: string;
  /**
   * Reconnect after the connection is lost: at once when the gateway says it
   * is going away, else after minMs; the next URL first, then the others in
   * turn, backing off between full rounds of failures. true means
   * { minMs: 100, maxMs: 5000 }. Default false. A reconnection presents the
   * latest resume token the gateway gave (with token too), so that a gateway
   * that keeps sessions gives the session back (ReconnectEvent.resumed);
   * otherwise it is a new session. Requests made meanwhile wait for it (within their timeout), and
   * so do those the old gateway did not forward to a service: they are sent
   * again on the new session.
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * With reconnect, names the routes whose requests may be handled twice
   * without harm (reads, or writes that carry their own ID): a request on
   * one whose connection was lost without an answer is sent again on the
   * next session, up to MAX_RETRIES times, instead of failing with
   * Unavailable. That is how a request in flight on a gateway that was
   * killed still succeeds.
   */
  idempotent?(route: string): boolean;
  /** How long a request waits for its response, in ms; 0 waits forever. Default 15000. */
  requestTimeoutMs?: number;
  /** How long connecting and the handshake may take, in ms. Default 10000. */
  handshakeTimeoutMs?: number;
  /**
   * The WebSocket class. Default globalThis.WebSocket (browsers, Node 22+).
   * On Node 20 pass the "ws" package's: `import WebSocket from "ws"`.
   */
  WebSocket?: WebSocketConstructor;
  /** Called each time a session opens: after connect() and after each reconnection. */
  onConnect?(sessionId: string, userId: string): void;
  /**
   * Called each time a session ends: with the Close frame's code (such as 7
   * for a kick, 14 when the gateway goes away: isGoingAway(err)), 4 when
   * heartbeats were lost, 14 when the connection dropped,
   * or undefined after close(). Called once more, with the refusal, when a
   * reconnection attempt is refused for good (codes 6, 9, 16).
   */
  onClose?(err: GuildError | undefined): void;
  /** Called after each reconnection (after onConnect): where the client went, and why. */
  onReconnect?(event: ReconnectEvent): void;
  /** Called when a push handler or a callback throws. Default console.error. */
  onError?(err: unknown): void;
}

export interface RequestOptions {
  /** Overrides ConnectOptions.requestTimeoutMs for this request. */
  timeoutMs?: number;
}

/** A connected client. Get one from connect(). */
export interface Client {
  /** The current session's ID; "" while disconnected. */
  readonly sessionId: string;
  /** The user the current session is bound to (by its token, or a login route the gateway reported); "" if none. */
  readonly userId: string;
  /** The heartbeat interval the gateway asked for, in ms. */
  readonly heartbeatMs: number;
  /** Whether a session is open now. */
  readonly connected: boolean;
  /** The URL of the gateway in use, or last used while reconnecting. */
  readonly url: string;
  /** Whether the client is finished: close() was called, or it will not reconnect. */
  readonly closed: boolean;

  /**
   * request calls a route with a typed message and decodes the reply. It
   * rejects with a GuildError: the Response's code, 4 on timeout, 14 when
   * not connected (with reconnect: when no session opened within the
   * timeout) or when the connection drops.
   */
  request<I extends DescMessage, O extends DescMessage>(
    route: string,
    requestSchema: I,
    request: MessageInitShape<I>,
    replySchema: O,
    options?: RequestOptions,
  ): Promise<MessageShape<O>>;

  /** requestRaw calls a route with an encoded body and resolves with the reply's bytes. */
  requestRaw(route: string, body: Uint8Array, options?: RequestOptions): Promise<Uint8Array>;

  /**
   * onPush calls handler with each push on route, decoded. Pushes that do not
   * decode go to onError. It returns a function that unsubscribes.
   */
  onPush<T extends DescMessage>(route: string, schema: T, handler: (msg: MessageShape<T>) => void): () => void;

  /** onPushRaw calls handler with the bytes of each push on route. It returns a function that unsubscribes. */
  onPushRaw(route: string, handler: (body: Uint8Array) => void): () => void;

  /**
   * onReconnect calls handler after each reconnection, as
   * ConnectOptions.onReconnect does (after it): for helpers such as
   * subscribeReplica that must act when a session is new or lost pushes.
   * It returns a function that unsubscribes.
   */
  onReconnect(handler: (event: ReconnectEvent) => void): () => void;

  /**
   * close says goodbye to the gateway, stops reconnecting and fails requests
   * in flight with 1 Canceled. Safe to call more than once.
   */
  close(): Promise<void>;
}

/** Codes after which reconnecting would fail again (PROTOCOL.md section 4). */
const FINAL_CODES: ReadonlySet<number> = new Set([Code.AlreadyExists, Code.FailedPrecondition, Code.Unauthenticated]);

/**
 * connect opens a session with a guild gateway. It resolves once a gateway
 * has accepted the handshake, and rejects with a GuildError when it refuses
 * (the HandshakeAck's code), when nothing answers in time (4) or when the
 * connection fails (14); with several URLs, with the last URL's error once
 * every one failed. The first connection is not retried.
 */
export async function connect(options: ConnectOptions): Promise<Client> {
  const c = new GuildClient(options);
  await c.start();
  return c;
}

/** A request of the client: sent on a Conn, or waiting for one. */
interface Outgoing extends Pending {
  route: string;
  body: Uint8Array;
  timeoutMs: number;
  settled: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Where it waits for its Response, with its id there. */
  conn: Conn | undefined;
  id: number;
  /** How often it was sent again after a lost connection (idempotent routes). */
  retries: number;
}

/**
 * How often a request on an idempotent route (ConnectOptions.idempotent) is
 * sent again after its connection was lost without an answer.
 */
export const MAX_RETRIES = 3;

class GuildClient implements Client {
  private readonly opts: ConnectOptions;
  private readonly urls: readonly string[];
  private readonly WS: WebSocketConstructor;
  private readonly backoff: Required<ReconnectOptions> | undefined;
  private readonly handlers = new Map<string, Set<(body: Uint8Array) => void>>();
  private readonly reconnectHandlers = new Set<(event: ReconnectEvent) => void>();
  /** The session requests go to; undefined while reconnecting. */
  private conn: Conn | undefined;
  /** The index in urls of conn, or of the last one. */
  private index = 0;
  /** Sessions not ended yet: conn, and one going away that still owes answers. */
  private readonly live = new Set<Conn>();
  /** Requests waiting for a session. */
  private waiting: Outgoing[] = [];
  private nextId = 1;
  private reconnecting = false;
  private lastError: GuildError | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private finished = false;
  /** The latest resume token (with reconnect), presented on reconnection. */
  private resumeToken = "";

  constructor(opts: ConnectOptions) {
    const urls = opts?.urls ?? (typeof opts?.url === "string" && opts.url !== "" ? [opts.url] : []);
    if (opts?.url !== undefined && opts?.urls !== undefined) {
      throw new TypeError("guild: connect takes url or urls, not both");
    }
    if (urls.length === 0 || urls.some((u) => typeof u !== "string" || u === "")) {
      throw new TypeError("guild: connect needs a url (or urls)");
    }
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      throw new TypeError('guild: no global WebSocket; pass one, e.g. connect({ WebSocket, ... }) with WebSocket from "ws"');
    }
    this.opts = opts;
    this.urls = [...urls];
    this.WS = WS;
    if (opts.reconnect) {
      const r = opts.reconnect === true ? {} : opts.reconnect;
      const minMs = r.minMs ?? 100;
      const maxMs = Math.max(r.maxMs ?? 5000, minMs);
      if (!(minMs > 0)) throw new TypeError("guild: reconnect.minMs must be positive");
      this.backoff = { minMs, maxMs };
    }
  }

  get sessionId(): string {
    return this.conn?.sessionId ?? "";
  }
  get userId(): string {
    return this.conn?.userId ?? "";
  }
  get heartbeatMs(): number {
    return this.conn?.heartbeatMs ?? 0;
  }
  get connected(): boolean {
    return this.conn !== undefined;
  }
  get url(): string {
    return this.urls[this.index]!;
  }
  get closed(): boolean {
    return this.finished;
  }

  async start(): Promise<void> {
    let last: GuildError | undefined;
    for (let i = 0; i < this.urls.length; i++) {
      try {
        this.opened(await this.dial(i), i);
        return;
      } catch (e) {
        last = e as GuildError;
      }
    }
    throw last;
  }

  private dial(i: number): Promise<Conn> {
    return Conn.dial(
      {
        WebSocket: this.WS,
        url: this.urls[i]!,
        token: this.opts.token ?? "",
        resume: this.backoff ? this.resumeToken : "",
        clientName: this.opts.clientName ?? DEFAULT_CLIENT_NAME,
        handshakeTimeoutMs: this.opts.handshakeTimeoutMs ?? 10_000,
      },
      {
        push: (route, body) => this.dispatch(route, body),
        goingAway: (conn, err) => this.retire(conn, err),
        end: (conn, err) => this.ended(conn, err),
        update: (conn) => {
          if (conn === this.conn) this.resumeToken = conn.resumeToken;
        },
      },
    );
  }

  private opened(conn: Conn, i: number): void {
    this.conn = conn;
    this.index = i;
    this.resumeToken = conn.resumeToken;
    this.live.add(conn);
    this.lastError = undefined;
    this.callback(() => this.opts.onConnect?.(conn.sessionId, conn.userId));
  }

  /** retire stops sending requests on conn, whose gateway is going away, and reconnects. */
  private retire(conn: Conn, cause: GuildError): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    this.reconnect(cause);
  }

  private ended(conn: Conn, err: GuildError | undefined): void {
    // A session opened after close() was never live: it ends unreported.
    if (!this.live.delete(conn)) return;
    const current = conn === this.conn;
    if (current) {
      this.conn = undefined;
      this.resumeToken = conn.resumeToken; // "" after a kick
    }
    this.callback(() => this.opts.onClose?.(err));
    if (!current || err === undefined || this.finished) return;
    if (!this.backoff || FINAL_CODES.has(err.code)) {
      this.finish(unavailable(`connection lost: ${err.message}`));
      return;
    }
    this.reconnect(err);
  }

  /** finish stops the client for good and fails the requests waiting for a session. */
  private finish(err: GuildError): void {
    this.finished = true;
    if (this.reconnectTimer !== undefined) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
    }
    const waiting = this.waiting;
    this.waiting = [];
    for (const out of waiting) this.settle(out, () => out.reject(err));
  }

  /**
   * reconnect dials the URLs in turn, starting after the current one: at
   * once when the gateway went away, else after minMs; between full rounds
   * of failures it backs off.
   */
  private reconnect(cause: GuildError): void {
    if (this.reconnecting || this.finished || !this.backoff) return;
    this.reconnecting = true;
    const from = this.index;
    const n = this.urls.length;
    let backoffMs = this.backoff.minMs;
    let attempts = 0;
    const round = (wait: boolean): void => {
      if (!wait) {
        attempt(1);
        return;
      }
      const delay = backoffMs - Math.random() * (backoffMs / 2);
      backoffMs = Math.min(2 * backoffMs, this.backoff!.maxMs);
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = undefined;
        attempt(1);
      }, delay);
    };
    const attempt = (k: number): void => {
      if (this.finished) return;
      const i = (from + k) % n;
      attempts++;
      this.dial(i).then(
        (conn) => {
          if (this.finished) {
            conn.goodbye(new GuildError(Code.Canceled, "client closed"));
            return;
          }
          this.reconnecting = false;
          this.opened(conn, i);
          const event: ReconnectEvent = { url: this.urls[i]!, from: this.urls[from]!, cause, attempts, resumed: conn.resumed, resync: conn.resync };
          this.callback(() => this.opts.onReconnect?.(event));
          for (const h of [...this.reconnectHandlers]) this.callback(() => h(event));
          const waiting = this.waiting;
          this.waiting = [];
          for (const out of waiting) this.submit(out);
        },
        (err: GuildError) => {
          if (this.finished) return;
          this.lastError = err;
          if (FINAL_CODES.has(err.code)) {
            this.reconnecting = false;
            this.callback(() => this.opts.onClose?.(err));
            this.finish(unavailable(`reconnection refused: ${err.message}`));
            return;
          }
          if (k < n) attempt(k + 1);
          else round(true);
        },
      );
    };
    round(!cause.goingAway);
  }

  private dispatch(route: string, body: Uint8Array): void {
    const hs = this.handlers.get(route);
    if (!hs) return; // Pushes on routes nobody listens to are ignored.
    for (const h of [...hs]) this.callback(() => h(body));
  }

  private callback(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (this.opts.onError) {
        try {
          this.opts.onError(e);
        } catch {
          // Nowhere left to report it.
        }
      } else {
        console.error("guild: callback threw:", e);
      }
    }
  }

  async request<I extends DescMessage, O extends DescMessage>(
    route: string,
    requestSchema: I,
    request: MessageInitShape<I>,
    replySchema: O,
    options?: RequestOptions,
  ): Promise<MessageShape<O>> {
    const body = toBinary(requestSchema, create(requestSchema, request));
    const reply = await this.requestRaw(route, body, options);
    try {
      return fromBinary(replySchema, reply);
    } catch (e) {
      throw new GuildError(Code.DataLoss, `${route}: reply does not decode as ${replySchema.typeName}: ${(e as Error)?.message ?? e}`);
    }
  }

  requestRaw(route: string, body: Uint8Array, options?: RequestOptions): Promise<Uint8Array> {
    const timeoutMs = options?.timeoutMs ?? this.opts.requestTimeoutMs ?? 15_000;
    return new Promise<Uint8Array>((resolve, reject) => {
      const out: Outgoing = {
        route,
        body,
        timeoutMs,
        settled: false,
        timer: undefined,
        conn: undefined,
        id: 0,
        resolve: (b) => this.settle(out, () => resolve(b)),
        reject: (e) => this.settle(out, () => reject(e)),
        resend: () => {
          out.conn = undefined;
          this.submit(out);
        },
        retries: 0,
        lost: (e) => {
          if (this.backoff && !this.finished && out.retries < MAX_RETRIES && this.opts.idempotent?.(route)) {
            out.retries++;
            out.resend();
            return;
          }
          out.reject(e);
        },
      };
      if (timeoutMs > 0) {
        out.timer = setTimeout(() => this.expire(out), timeoutMs);
      }
      this.submit(out);
    });
  }

  /** submit sends out on the session, or queues it while reconnecting. */
  private submit(out: Outgoing): void {
    if (out.settled) return;
    const conn = this.conn;
    if (conn) {
      const id = this.nextId++;
      if (this.nextId > Number.MAX_SAFE_INTEGER) this.nextId = 1;
      try {
        conn.send(id, out.route, out.body, out);
      } catch (e) {
        if (this.backoff && !this.finished) {
          // Not sent: the socket is closing, and its end reconnects.
          this.waiting.push(out);
          return;
        }
        out.reject(e instanceof GuildError ? e : unavailable(String(e)));
        return;
      }
      out.conn = conn;
      out.id = id;
      return;
    }
    if (this.reconnecting && !this.finished) {
      this.waiting.push(out);
      return;
    }
    out.reject(unavailable(this.finished ? "client closed" : "not connected"));
  }

  /** expire fails out at its deadline, wherever it waits. */
  private expire(out: Outgoing): void {
    out.timer = undefined;
    if (out.settled) return;
    if (out.conn) {
      out.conn.forget(out.id);
      out.reject(new GuildError(Code.DeadlineExceeded, `${out.route}: no response within ${out.timeoutMs}ms`));
      return;
    }
    this.waiting = this.waiting.filter((w) => w !== out);
    const last = this.lastError ? `; the last attempt: ${this.lastError.message}` : "";
    out.reject(unavailable(`${out.route}: no connection to a gateway within ${out.timeoutMs}ms (reconnecting${last})`));
  }

  private settle(out: Outgoing, f: () => void): void {
    if (out.settled) return;
    out.settled = true;
    if (out.timer !== undefined) clearTimeout(out.timer);
    out.timer = undefined;
    f();
  }

  onPush<T extends DescMessage>(route: string, schema: T, handler: (msg: MessageShape<T>) => void): () => void {
    return this.onPushRaw(route, (body) => {
      let msg: MessageShape<T>;
      try {
        msg = fromBinary(schema, body);
      } catch (e) {
        throw new GuildError(Code.DataLoss, `push ${route}: does not decode as ${schema.typeName}: ${(e as Error)?.message ?? e}`);
      }
      handler(msg);
    });
  }

  onPushRaw(route: string, handler: (body: Uint8Array) => void): () => void {
    let hs = this.handlers.get(route);
    if (!hs) {
      hs = new Set();
      this.handlers.set(route, hs);
    }
    // Wrap so that the same function subscribed twice is two subscriptions.
    const h = (body: Uint8Array) => handler(body);
    hs.add(h);
    return () => {
      const cur = this.handlers.get(route);
      if (!cur) return;
      cur.delete(h);
      if (cur.size === 0) this.handlers.delete(route);
    };
  }

  onReconnect(handler: (event: ReconnectEvent) => void): () => void {
    const h = (e: ReconnectEvent) => handler(e);
    this.reconnectHandlers.add(h);
    return () => {
      this.reconnectHandlers.delete(h);
    };
  }

  async close(): Promise<void> {
    const canceled = new GuildError(Code.Canceled, "client closed");
    this.finish(canceled);
    const conns = [...this.live];
    if (conns.length === 0) return;
    for (const conn of conns) conn.goodbye(canceled);
    // Give the sockets a moment to close, so that the goodbyes go out.
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(conns.map((c) => c.socketClosed)), new Promise<void>((r) => (t = setTimeout(r, 1000)))]);
    clearTimeout(t);
  }
}
