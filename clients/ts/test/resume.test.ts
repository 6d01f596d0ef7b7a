// The resume test against a real Go gateway (test/gateway, run with
// `go run`): a client whose connection is cut gets its session back, with
// the pushes sent while it was away.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connect, type Client, type ReconnectEvent } from "../src/index.js";
import { waitFor } from "./fakegate.js";

const str = (value: string) => toBinary(StringValueSchema, create(StringValueSchema, { value }));
const unstr = (b: Uint8Array) => fromBinary(StringValueSchema, b).value;

/** A real gateway process, driven by commands on its stdin (see test/gateway/main.go). */
class RealGateway {
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  private constructor(
    private readonly proc: ChildProcessByStdio<Writable, Readable, null>,
    rl: Interface,
  ) {
    rl.on("line", (l) => {
      this.lines.push(l);
      this.wake?.();
    });
  }

  static start(): RealGateway {
    const root = fileURLToPath(new URL("../../..", import.meta.url));
    const proc = spawn("go", ["run", "./clients/ts/test/gateway"], { cwd: root, stdio: ["pipe", "pipe", "inherit"] });
    return new RealGateway(proc, createInterface({ input: proc.stdout }));
  }

  async line(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (Date.now() > deadline) throw new Error("the gateway process said nothing in time");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.lines.shift()!;
  }

  async command(cmd: string): Promise<void> {
    this.proc.stdin.write(cmd + "\n");
    const answer = await this.line(15_000);
    if (answer !== "ok") throw new Error(`${cmd}: ${answer}`);
  }

  stop(): void {
    this.proc.stdin.end();
  }
}

describe("resume against a real gateway", () => {
  let gw: RealGateway;
  let url = "";
  beforeAll(async () => {
    gw = RealGateway.start();
    const ready = await gw.line(120_000); // go run may build first
    expect(ready).toMatch(/^ready ws:/);
    url = ready.slice("ready ".length);
  }, 130_000);
  afterAll(() => gw?.stop());

  it("resumes the session after a cut, with the pushes sent meanwhile, in order", async () => {
    const events: ReconnectEvent[] = [];
    const pushes: string[] = [];
    const c: Client = await connect({ url, WebSocket, reconnect: { minMs: 50, maxMs: 200 }, onReconnect: (e) => events.push(e) });
    try {
      c.onPushRaw("svc.P", (b) => pushes.push(unstr(b)));
      expect(unstr(await c.requestRaw("svc.Login", str("ana")))).toBe("ana");
      expect(c.userId).toBe("ana"); // from the SessionUpdate, before the answer
      const id = c.sessionId;
      await gw.command("down");
      await gw.command("cut");
      await gw.command("detached 1");
      const want = ["p0", "p1", "p2", "p3", "p4"];
      for (const p of want) await gw.command(`push ${id} ${p}`);
      await gw.command("up");
      await waitFor(() => events.length === 1, 10_000, "the reconnection");
      expect(events[0]!.resumed).toBe(true);
      expect(events[0]!.resync).toBe(false);
      expect(c.sessionId).toBe(id);
      expect(c.userId).toBe("ana");
      await waitFor(() => pushes.length === want.length, 5_000, "the pushes kept");
      expect(pushes).toEqual(want);
      expect(unstr(await c.requestRaw("svc.Echo", str("after")))).toBe("after");
      await gw.command("detached 0");
    } finally {
      await c.close();
    }
  }, 30_000);
});
