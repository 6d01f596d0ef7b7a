// subscribeReplica end to end: a real gateway and a synced player grain
// (propsync/internal/tsfixture -serve, run with `go run`). The client
// changes its player through requests; its replica must equal the grain's
// state (private fields removed) after every change, and after the grain
// deactivates (the end notice: a gap) it must subscribe again by itself.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { equals, fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connect, GapError, subscribeReplica, type Client } from "../src/index.js";
import { waitFor } from "./fakegate.js";
import { PlayerSchema, StatsSchema, type Player } from "./gen/propsync/internal/testpb/test_pb.js";

/** The Go server, driven by commands on its stdin (see serve.go). */
class Server {
  private readonly lines: string[] = [];
  private constructor(private readonly proc: ChildProcessByStdio<Writable, Readable, null>) {
    createInterface({ input: proc.stdout }).on("line", (l) => this.lines.push(l));
  }

  static start(): Server {
    const root = fileURLToPath(new URL("../../..", import.meta.url));
    return new Server(spawn("go", ["run", "./propsync/internal/tsfixture", "-serve"], { cwd: root, stdio: ["pipe", "pipe", "inherit"] }));
  }

  async line(timeoutMs: number): Promise<string> {
    await waitFor(() => this.lines.length > 0, timeoutMs, "a line from the server");
    return this.lines.shift()!;
  }

  async command(cmd: string): Promise<string> {
    this.proc.stdin.write(cmd + "\n");
    const answer = await this.line(15_000);
    if (answer.startsWith("error")) throw new Error(`${cmd}: ${answer}`);
    return answer;
  }

  /** state returns the user's player as a client must see it. */
  async state(user: string): Promise<Player> {
    const a = await this.command(`state ${user}`);
    return fromBinary(PlayerSchema, new Uint8Array(Buffer.from(a.slice("state ".length), "base64")));
  }

  stop(): void {
    this.proc.stdin.end();
  }
}

describe("subscribeReplica against a synced grain", () => {
  let server: Server;
  let url = "";
  beforeAll(async () => {
    server = Server.start();
    const ready = await server.line(120_000); // go run may build first
    expect(ready).toMatch(/^ready ws:/);
    url = ready.slice("ready ".length);
  }, 130_000);
  afterAll(() => server?.stop());

  it("mirrors the grain's state after every turn, and subscribes again after its end notice", async () => {
    const c: Client = await connect({ url, WebSocket, token: "ana" });
    try {
      const mutate = (n: number, seed: number) => c.request("game.Mutate", StatsSchema, { hp: n, mp: seed }, StatsSchema);
      /** waits until the replica equals the grain's state. */
      const same = async (what: string) => {
        const want = await server.state("ana");
        await waitFor(() => equals(PlayerSchema, sub.state, want), 5000, what);
      };
      await mutate(20, 1);
      const reasons: unknown[] = [];
      const sub = await subscribeReplica(c, "sync.Subscribe", PlayerSchema, { unsubscribeRoute: "sync.Unsubscribe", onResubscribe: (r) => reasons.push(r) });
      expect(sub.replica.entity).toBe("player/ana");
      await same("the snapshot");
      const paths: string[] = [];
      sub.on("", (p) => paths.push(p));
      for (let i = 0; i < 60; i++) {
        await mutate(1 + (i % 4), 100 + i);
        await same(`the replica after turn ${i}`);
      }
      expect(paths.length).toBeGreaterThan(30);
      expect(reasons).toEqual([]);

      await server.command("deactivate ana");
      await waitFor(() => reasons.length === 1 && sub.replica.synced, 5000, "a new subscription after the end notice");
      expect(reasons[0]).toBeInstanceOf(GapError);
      for (let i = 0; i < 10; i++) {
        await mutate(3, 1000 + i);
        await same(`the replica after the grain came back, turn ${i}`);
      }

      await sub.close();
      const version = sub.replica.version;
      await mutate(3, 2000);
      await new Promise((r) => setTimeout(r, 100));
      expect(sub.replica.version).toBe(version); // unsubscribed: no more deltas
    } finally {
      await c.close();
    }
  }, 60_000);
});
