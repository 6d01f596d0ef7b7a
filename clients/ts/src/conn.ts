import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "./codes.js";
import { GuildError, unavailable } from "./errors.js";
import { FrameSchema, type Frame } from "./gen/gate/gatepb/gate_pb.js";
import {
  bytesOf,
  WS_OPEN,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./websocket.js";

/** The protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;

type Timer = ReturnType<typeof setTimeout>;

/** FrameBody is one message a Frame can carry, as an initializer. */
type FrameBody = NonNullable<MessageInitShape<typeof FrameSchema>["body"]>;

/** A request sent on a Conn, waiting for its Response. */
export interface Pending {
  resolve(body: Uint8Array): void;
  reject(err: GuildError): void;
  /**
   * The gateway did not forward the request to a service (it is going
   * away): it may be sent again, on another connection.
   */
  resend(): void;
  /**
   * The connection was lost without an answer: the request may or may not
   * have been handled. err is the Unavailable error to fail it with.
   */
  lost(err: GuildError): void;
}

/** What a Conn tells its owner. Called from WebSocket event handlers. */
export interface ConnEvents {
  push(route: string, body: Uint8Array): void;
  /**
   * The gateway is going away: it refused a request as not forwarded.
   * The session still owes the answers to earlier requests, but takes no
   * new ones. Called before that request's resend.
   */
  goingAway(conn: Conn, err: GuildError): void;
  /** The open session ended, with why. Called once, never for a failed handshake. */
  end(conn: Conn, err: GuildError | undefined): void;
  /** The session was bound to a user after its handshake (a SessionUpdate): see userId and resumeToken. */
  update(conn: Conn): void;
}

export interface DialOptions {
  WebSocket: WebSocketConstructor;
  url: string;
  token: string;
  /** A resume token of an earlier session, or "". */
  resume: string;
  clientName: string;
  handshakeTimeoutMs: number;
}

/**
 * Conn is one WebSocket connection and the session on it. A session does not
 * survive its connection: a reconnect is a new Conn. Conn owns the requests
 * in flight on it, and the heartbeat timer.
 */
export class Conn {
  sessionId = "";
  userId = "";
  heartbeatMs = 0;
  /** The latest resume token the gateway gave this session ("" for none). */
  resumeToken = "";
  /** The handshake resumed an earlier session. */
  resumed = false;
  /** With resumed: pushes were dropped while the client was away. */
  resync = false;

  private readonly ws: WebSocketLike;
  private readonly pending = new Map<number, Pending>();
  private state: "handshake" | "open" | "ended" = "handshake";
  private lastSent = 0;
  private lastRecv = 0;
  private timer: Timer | undefined;
  /** Why the session ends, when known before the socket closes (a Close frame). */
  private closeErr: GuildError | undefined;
  private events: ConnEvents | undefined;
  private settleHandshake: ((err: GuildError | undefined) => void) | undefined;
  private readonly hello: { token: string; client: string; resume: string };
  /** Resolves when the socket has closed. */
  readonly socketClosed: Promise<void>;

  private constructor(ws: WebSocketLike, hello: { token: string; client: string; resume: string }) {
    this.ws = ws;
    this.hello = hello;
    let done!: () => void;
    this.socketClosed = new Promise<void>((resolve) => (done = resolve));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.onOpen();
    ws.onmessage = (ev: { data: unknown }) => this.onMessage(ev.data);
    // Errors are followed by a close event, which does the work. The handler
    // must stay set: the "ws" package throws an error event nobody listens to.
    ws.onerror = () => {};
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      done();
      const detail = ev?.code ? ` (WebSocket status ${ev.code}${ev.reason ? ` "${ev.reason}"` : ""})` : "";
      this.end(this.closeErr ?? unavailable(`connection closed${detail}`));
    };
  }

  /**
   * dial connects, handshakes and resolves with the open session. It rejects
   * with the HandshakeAck's or Close's code when the gateway refuses, 4 when
   * nothing answers in time and 14 when the connection fails.
   */
  static dial(opts: DialOptions, events: ConnEvents): Promise<Conn> {
    return new Promise<Conn>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = new opts.WebSocket(opts.url);
      } catch (e) {
        reject(unavailable(`dial ${opts.url}: ${(e as Error)?.message ?? e}`));
        return;
      }
      const c = new Conn(ws, { token: opts.token, client: opts.clientName, resume: opts.resume });
      const timer = setTimeout(() => {
        c.end(new GuildError(Code.DeadlineExceeded, `no handshake answer within ${opts.handshakeTimeoutMs}ms`));
      }, opts.handshakeTimeoutMs);
      c.settleHandshake = (err) => {
        clearTimeout(timer);
        c.settleHandshake = undefined;
        if (err) {
          reject(err);
        } else {
          c.events = events;
          resolve(c);
        }
      };
    });
  }

  private onOpen(): void {
    if (this.state !== "handshake") return;
    try {
      this.sendFrame({ case: "handshake", value: { version: PROTOCOL_VERSION, ...this.hello } });
    } catch (e) {
      this.end(e as GuildError);
    }
  }

  private onMessage(data: unknown): void {
    if (this.state === "ended") return;
    const bytes = bytesOf(data);
    if (!bytes) return; // The gateway sends binary messages only.
    let frame: Frame;
    try {
      frame = fromBinary(FrameSchema, bytes);
    } catch {
      this.end(new GuildError(Code.InvalidArgument, "gateway sent a frame that does not decode"));
      return;
    }
    this.lastRecv = Date.now();
    const body = frame.body;
    if (this.state === "handshake") {
      if (body.case === "handshakeAck") {
        const ack = body.value;
        if (ack.code !== Code.OK) {
          this.end(new GuildError(ack.code, ack.message || "handshake refused"));
          return;
        }
        this.sessionId = ack.sessionId;
        this.userId = ack.userId;
        this.heartbeatMs = ack.heartbeatMs;
        this.resumeToken = ack.resumeToken;
        this.resumed = ack.resumed;
        this.resync = ack.resumed && ack.resync;
        this.state = "open";
        if (this.heartbeatMs > 0) this.timer = setTimeout(this.tick, this.heartbeatMs);
        this.settleHandshake?.(undefined);
      } else if (body.case === "close") {
        this.end(closeError(body.value.code, body.value.reason, false));
      } else {
        this.end(new GuildError(Code.InvalidArgument, `expected a HandshakeAck, got ${body.case ?? "an empty frame"}`));
      }
      return;
    }
    switch (body.case) {
      case "response": {
        const res = body.value;
        const p = this.pending.get(Number(res.id));
        if (!p) return; // Timed out already: drop it.
        this.pending.delete(Number(res.id));
        if (res.code === Code.OK) {
          p.resolve(res.body);
        } else if (res.code === Code.Unavailable && res.notForwarded) {
          this.events?.goingAway(this, new GuildError(res.code, res.message, true));
          p.resend();
        } else {
          p.reject(new GuildError(res.code, res.message));
        }
        return;
      }
      case "push":
        this.events?.push(body.value.route, body.value.body);
        return;
      case "sessionUpdate":
        this.userId = body.value.userId;
        this.resumeToken = body.value.resumeToken;
        this.events?.update(this);
        return;
      case "close":
        // The gateway closes the connection next: close it now (PROTOCOL.md
        // section 3.6). Code 14 on an open session: it is going away; any
        // other code ended the session for good: nothing is left to resume.
        if (body.value.code !== Code.Unavailable) this.resumeToken = "";
        this.end(closeError(body.value.code, body.value.reason, body.value.code === Code.Unavailable));
        return;
      default:
        // Heartbeats need nothing beyond lastRecv; anything else a gateway
        // must not send is ignored.
        return;
    }
  }

  /** tick sends a heartbeat when idle and ends a connection gone silent. */
  private readonly tick = (): void => {
    this.timer = undefined;
    if (this.state !== "open") return;
    const hb = this.heartbeatMs;
    const now = Date.now();
    if (now - this.lastRecv >= 3 * hb) {
      this.end(new GuildError(Code.DeadlineExceeded, `nothing received for ${3 * hb}ms (heartbeat lost)`));
      return;
    }
    if (now - this.lastSent >= hb) {
      try {
        this.sendFrame({ case: "heartbeat", value: {} });
      } catch (e) {
        this.end(e as GuildError);
        return;
      }
    }
    const next = Math.min(this.lastSent + hb, this.lastRecv + 3 * hb) - now;
    this.timer = setTimeout(this.tick, Math.max(next, 1));
  };

  private sendFrame(body: FrameBody): void {
    if (this.ws.readyState !== WS_OPEN) throw unavailable("not connected");
    this.ws.send(toBinary(FrameSchema, create(FrameSchema, { body })));
    this.lastSent = Date.now();
  }

  /**
   * send sends Request{id, route, body} and keeps p until its Response
   * comes, the session ends or forget(id). It throws a GuildError (14)
   * when the session is not open.
   */
  send(id: number, route: string, body: Uint8Array, p: Pending): void {
    if (this.state !== "open") throw unavailable("not connected");
    this.sendFrame({ case: "request", value: { id: BigInt(id), route, body } });
    this.pending.set(id, p);
  }

  /** forget drops request id: its caller gave up. A late Response is ignored. */
  forget(id: number): void {
    this.pending.delete(id);
  }

  /** goodbye sends Close{} and ends the session; in-flight requests fail with err. */
  goodbye(err: GuildError): void {
    if (this.state === "open") {
      try {
        this.sendFrame({ case: "close", value: {} });
      } catch {
        // The connection is gone already.
      }
    }
    this.closeErr = err;
    this.end(err, true);
  }

  /**
   * end finishes the connection once: it stops the timer, closes the socket,
   * settles the requests in flight and tells the owner. Requests in flight
   * fail with 14 Unavailable, whatever ended the session, unless the user
   * closed; after a going-away Close they were handled by no service
   * (PROTOCOL.md section 3.7), and are handed back to be sent again.
   */
  private end(err: GuildError, byUser = false): void {
    if (this.state === "ended") return;
    const wasOpen = this.state === "open";
    this.state = "ended";
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      this.ws.close(1000);
    } catch {
      // Closing a socket that is closing already.
    }
    if (!wasOpen) {
      this.settleHandshake?.(err);
      return;
    }
    const pending = [...this.pending.values()];
    this.pending.clear();
    if (!byUser && err.goingAway) {
      this.events?.end(this, err);
      for (const p of pending) p.resend();
      return;
    }
    if (byUser) {
      for (const p of pending) p.reject(err);
    } else {
      const inflight = unavailable(`connection lost: ${err.message}`);
      for (const p of pending) p.lost(inflight);
    }
    this.events?.end(this, byUser ? undefined : err);
  }
}

/** closeError is the error of a Close frame from the gateway. */
function closeError(code: number, reason: string, goingAway: boolean): GuildError {
  return new GuildError(code || Code.Unavailable, reason || "closed by the gateway", goingAway);
}
