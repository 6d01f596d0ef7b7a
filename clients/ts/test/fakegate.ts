// An in-process fake gateway: a WebSocketServer on a random port that
// speaks protocol v1 with the generated gate messages. Each test scripts it
// through the hooks below.
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { WebSocketServer, type WebSocket } from "ws";
import { FrameSchema, type Frame, type Request } from "../src/gen/gate/gatepb/gate_pb.js";

type FrameBody = NonNullable<MessageInitShape<typeof FrameSchema>["body"]>;

/** One client connection, as the fake gateway sees it. */
export class FakeSession {
  readonly frames: Frame[] = [];
  sessionId = "";
  closed = false;
  constructor(readonly ws: WebSocket) {}

  send(body: FrameBody): void {
    this.ws.send(toBinary(FrameSchema, create(FrameSchema, { body })));
  }
  respond(id: bigint, code: number, message: string, body: Uint8Array = new Uint8Array()): void {
    this.send({ case: "response", value: { id, code, message, body } });
  }
  push(route: string, body: Uint8Array): void {
    this.send({ case: "push", value: { route, body } });
  }
  /** refuse answers a request as a gateway that is shutting down does. */
  refuse(id: bigint): void {
    this.send({ case: "response", value: { id, code: 14, message: "gateway shutting down: not forwarded", notForwarded: true } });
  }
  /** goAway sends the going-away Close and closes the connection. */
  goAway(): void {
    this.send({ case: "close", value: { code: 14, reason: "gateway shutting down" } });
    this.ws.close();
  }
  count(kind: NonNullable<Frame["body"]["case"]>): number {
    return this.frames.filter((f) => f.body.case === kind).length;
  }
}

export interface FakeGatewayOptions {
  heartbeatMs?: number;
  /**
   * Answers a Handshake (its token, the connection's number, its resume
   * token); default accepts. Return a code to refuse; sessionId, resumeToken,
   * resumed and resync go in the ack.
   */
  handshake?(
    token: string,
    n: number,
    resume: string,
  ):
    | { code: number; message?: string; userId?: string; sessionId?: string; resumeToken?: string; resumed?: boolean; resync?: boolean }
    | undefined;
  /** Called after an accepting HandshakeAck went out: pushes kept for a resumed session, say. */
  afterAck?(s: FakeSession, n: number): void;
  /** Sends Close{code} at connect instead of waiting for the handshake. */
  closeAtConnect?: (n: number) => { code: number; reason: string } | undefined;
  /** Answer heartbeats with heartbeats (default true). */
  answerHeartbeats?: boolean;
  /** Handles a request; default: echo the body. */
  onRequest?(req: Request, s: FakeSession): void;
}

export class FakeGateway {
  readonly sessions: FakeSession[] = [];
  private connections = 0;
  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
    readonly opts: FakeGatewayOptions,
  ) {}

  static async start(opts: FakeGatewayOptions = {}): Promise<FakeGateway> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve, reject) => {
      wss.once("listening", resolve);
      wss.once("error", reject);
    });
    const addr = wss.address();
    if (addr === null || typeof addr === "string") throw new Error("unexpected address");
    const g = new FakeGateway(wss, `ws://127.0.0.1:${addr.port}/ws`, opts);
    wss.on("connection", (ws) => g.accept(ws));
    return g;
  }

  private accept(ws: WebSocket): void {
    const n = ++this.connections;
    const s = new FakeSession(ws);
    this.sessions.push(s);
    ws.on("close", () => (s.closed = true));
    ws.on("error", () => {});
    const kick = this.opts.closeAtConnect?.(n);
    if (kick) {
      s.send({ case: "close", value: kick });
      ws.close();
      return;
    }
    ws.on("message", (data, isBinary) => {
      if (!isBinary) {
        ws.close();
        return;
      }
      const frame = fromBinary(FrameSchema, data as Buffer);
      s.frames.push(frame);
      const b = frame.body;
      switch (b.case) {
        case "handshake": {
          const verdict = this.opts.handshake?.(b.value.token, n, b.value.resume);
          if (verdict && verdict.code !== 0) {
            s.send({ case: "handshakeAck", value: { code: verdict.code, message: verdict.message ?? "", version: 1 } });
            ws.close();
            return;
          }
          s.sessionId = verdict?.sessionId ?? `s${n}`;
          s.send({
            case: "handshakeAck",
            value: {
              code: 0,
              sessionId: s.sessionId,
              userId: verdict?.userId ?? "",
              heartbeatMs: this.opts.heartbeatMs ?? 10_000,
              version: 1,
              resumeToken: verdict?.resumeToken ?? "",
              resumed: verdict?.resumed ?? false,
              resync: verdict?.resync ?? false,
            },
          });
          this.opts.afterAck?.(s, n);
          return;
        }
        case "heartbeat":
          if (this.opts.answerHeartbeats ?? true) s.send({ case: "heartbeat", value: {} });
          return;
        case "request":
          if (this.opts.onRequest) this.opts.onRequest(b.value, s);
          else s.respond(b.value.id, 0, "", b.value.body);
          return;
        case "close":
          ws.close();
          return;
      }
    });
  }

  /** The n-th connection (1-based). */
  session(n: number): FakeSession {
    const s = this.sessions[n - 1];
    if (!s) throw new Error(`no session ${n}`);
    return s;
  }

  async stop(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** waitFor polls cond until it holds, or fails after timeoutMs. */
export async function waitFor(cond: () => boolean, timeoutMs = 2000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
