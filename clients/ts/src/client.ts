import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code } from "./codes.js";
import { Conn } from "./conn.js";
import { GuildError, unavailable } from "./errors.js";
import type { WebSocketConstructor } from "./websocket.js";

/** The client name sent in the Handshake unless ConnectOptions.clientName says otherwise. */
export const DEFAULT_CLIENT_NAME = "ts-sdk/0.1";

/** Backoff between reconnection attempts: minMs, doubling up to maxMs. */
export interface ReconnectOptions {
  /** The first wait, in ms. Default 100. */
  minMs?: number;
  /** The longest wait, in ms. Default 5000. */
  maxMs?: number;
}

export interface ConnectOptions {
  /** The gateway's WebSocket URL, such as "ws://localhost:8080/ws". */
  url: string;
  /** Authenticates the session at once; sent again on every reconnection. */
  token?: string;
  /** Names this client in the gateway's logs. Default "ts-sdk/0.1". */
  clientName?: string;
  /**
   * Reconnect after the connection is lost, with exponential backoff. true
   * means { minMs: 100, maxMs: 5000 }. Default false. Each reconnection is
   * a new session.
   */
  reconnect?: boolean | ReconnectOptions;
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
   * for a kick), 4 when heartbeats were lost, 14 when the connection dropped,
   * or undefined after close(). Called once more, with the refusal, when a
   * reconnection attempt is refused for good (codes 6, 9, 16).
   */
  onClose?(err: GuildError | undefined): void;
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
  /** The user the current session is bound to by its token; "" if none. */
  readonly userId: string;
  /** The heartbeat interval the gateway asked for, in ms. */
  readonly heartbeatMs: number;
  /** Whether a session is open now. */
  readonly connected: boolean;
  /** Whether the client is finished: close() was called, or it will not reconnect. */
  readonly closed: boolean;

  /**
   * request calls a route with a typed message and decodes the reply. It
   * rejects with a GuildError: the Response's code, 4 on timeout, 14 when
   * not connected or when the connection drops.
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
   * close says goodbye to the gateway, stops reconnecting and fails requests
   * in flight with 1 Canceled. Safe to call more than once.
   */
  close(): Promise<void>;
}

/** Codes after which reconnecting would fail again (PROTOCOL.md section 4). */
const FINAL_CODES: ReadonlySet<number> = new Set([Code.AlreadyExists, Code.FailedPrecondition, Code.Unauthenticated]);

/**
 * connect opens a session with a guild gateway. It resolves once the
 * gateway has accepted the handshake, and rejects with a GuildError when it
 * refuses (the HandshakeAck's code), when nothing answers in time (4) or
 * when the connection fails (14). The first connection is not retried.
 */
export async function connect(options: ConnectOptions): Promise<Client> {
  const c = new GuildClient(options);
  await c.start();
  return c;
}

class GuildClient implements Client {
  private readonly opts: ConnectOptions;
  private readonly WS: WebSocketConstructor;
  private readonly backoff: Required<ReconnectOptions> | undefined;
  private readonly handlers = new Map<string, Set<(body: Uint8Array) => void>>();
  private conn: Conn | undefined;
  private nextId = 1;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private finished = false;

  constructor(opts: ConnectOptions) {
    if (!opts || typeof opts.url !== "string" || opts.url === "") {
      throw new TypeError("guild: connect needs a url");
    }
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      throw new TypeError('guild: no global WebSocket; pass one, e.g. connect({ WebSocket, ... }) with WebSocket from "ws"');
    }
    this.opts = opts;
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
  get closed(): boolean {
    return this.finished;
  }

  async start(): Promise<void> {
    this.opened(await this.dial());
  }

  private dial(): Promise<Conn> {
    return Conn.dial(
      {
        WebSocket: this.WS,
        url: this.opts.url,
        token: this.opts.token ?? "",
        clientName: this.opts.clientName ?? DEFAULT_CLIENT_NAME,
        handshakeTimeoutMs: this.opts.handshakeTimeoutMs ?? 10_000,
      },
      {
        push: (route, body) => this.dispatch(route, body),
        end: (conn, err) => this.ended(conn, err),
      },
    );
  }

  private opened(conn: Conn): void {
    this.conn = conn;
    this.attempt = 0;
    this.callback(() => this.opts.onConnect?.(conn.sessionId, conn.userId));
  }

  private ended(conn: Conn, err: GuildError | undefined): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    this.callback(() => this.opts.onClose?.(err));
    if (err === undefined || this.finished) return;
    if (!this.backoff || FINAL_CODES.has(err.code)) {
      this.finished = true;
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const b = this.backoff!;
    const delay = Math.min(b.maxMs, b.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.dial().then(
        (conn) => {
          if (this.finished) {
            conn.goodbye(new GuildError(Code.Canceled, "client closed"));
            return;
          }
          this.opened(conn);
        },
        (err: GuildError) => {
          if (this.finished) return;
          if (FINAL_CODES.has(err.code)) {
            this.finished = true;
            this.callback(() => this.opts.onClose?.(err));
            return;
          }
          this.scheduleReconnect();
        },
      );
    }, delay);
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
    const conn = this.conn;
    if (!conn) {
      return Promise.reject(unavailable(this.finished ? "client closed" : "not connected"));
    }
    const id = this.nextId++;
    if (this.nextId > Number.MAX_SAFE_INTEGER) this.nextId = 1;
    const timeoutMs = options?.timeoutMs ?? this.opts.requestTimeoutMs ?? 15_000;
    return conn.request(id, route, body, timeoutMs);
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

  async close(): Promise<void> {
    this.finished = true;
    if (this.reconnectTimer !== undefined) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
    }
    const conn = this.conn;
    if (!conn) return;
    conn.goodbye(new GuildError(Code.Canceled, "client closed"));
    // Give the socket a moment to close, so that the goodbye goes out.
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([conn.socketClosed, new Promise<void>((r) => (t = setTimeout(r, 1000)))]);
    clearTimeout(t);
  }
}
