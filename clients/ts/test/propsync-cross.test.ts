// The cross-language check of property sync: the Go side
// (propsync/internal/tsfixture, run with `go run`) makes seeded random
// changes to propsync's test state and diffs them with propsync.Tracker;
// the TypeScript Replica applies the encoded snapshot and deltas and must
// hold, after every delta, the state the Go side expects, and report the
// changed paths the Go Replica reported. PROPSYNC_SEED=<n> adds a seed.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { equals, fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { propsync, Replica } from "../src/index.js";
import { PlayerSchema } from "./gen/propsync/internal/testpb/test_pb.js";

interface Line {
  snapshot?: string;
  delta?: string;
  state: string;
  paths?: string[];
}

const TURNS = 600;

/** fixture runs the Go generator and returns its lines. */
async function fixture(seed: string, turns: number): Promise<Line[]> {
  const root = fileURLToPath(new URL("../../..", import.meta.url));
  const proc = spawn("go", ["run", "./propsync/internal/tsfixture", "-seed", seed, "-turns", String(turns)], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const chunks: Buffer[] = [];
  proc.stdout.on("data", (b: Buffer) => chunks.push(b));
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.on("error", reject);
    proc.on("close", resolve);
  });
  if (code !== 0) throw new Error(`go run ./propsync/internal/tsfixture exited with ${code}`);
  return Buffer.concat(chunks)
    .toString("utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);
}

const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

const seeds = ["1", "2"];
if (process.env.PROPSYNC_SEED) seeds.push(process.env.PROPSYNC_SEED);

describe("property sync across languages", () => {
  it.each(seeds)(
    "applies the Go side's deltas for seed %s, equal to its state after each",
    async (seed) => {
      const lines = await fixture(seed, TURNS);
      expect(lines.length).toBeGreaterThan(TURNS / 2);
      const r = new Replica(PlayerSchema);
      let paths: string[] = [];
      r.on("", (p) => paths.push(p));
      const first = lines[0]!;
      expect(first.snapshot).toBeDefined();
      r.apply(fromBinary(propsync.DeltaSchema, b64(first.snapshot!)));
      expect(r.synced).toBe(true);
      expect(equals(PlayerSchema, r.state, fromBinary(PlayerSchema, b64(first.state)))).toBe(true);
      const kinds = new Set<number>();
      let snapshots = 0;
      for (let i = 1; i < lines.length; i++) {
        const l = lines[i]!;
        const d = fromBinary(propsync.DeltaSchema, b64(l.snapshot ?? l.delta!));
        if (d.isSnapshot) snapshots++;
        for (const op of d.ops) kinds.add(op.kind);
        paths = [];
        r.apply(d);
        const want = fromBinary(PlayerSchema, b64(l.state));
        if (!equals(PlayerSchema, r.state, want)) {
          expect(r.state, `seed ${seed}, delta ${i} (version ${d.version})`).toEqual(want);
        }
        expect(r.version).toBe(d.version);
        expect(paths, `seed ${seed}, delta ${i}: the paths changed`).toEqual(l.paths ?? []);
      }
      expect(snapshots).toBe(Math.ceil(TURNS / 100) - 1);
      // Every kind of op went through.
      expect([...kinds].sort()).toEqual([
        propsync.Op_Kind.SET,
        propsync.Op_Kind.CLEAR,
        propsync.Op_Kind.MAP_DELETE,
        propsync.Op_Kind.LIST_TRUNCATE,
        propsync.Op_Kind.LIST_APPEND,
      ]);
    },
    120_000, // go run may build first
  );
});
