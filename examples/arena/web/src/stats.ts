// The "Your stats" panel: the player's record (an arena.player grain's
// PlayerRecord), shown from its synced state. arena.Stats subscribes the
// session to it; the SDK's subscribeReplica keeps a Replica of it from the
// snapshot and the deltas the grain pushes after each change, and calls
// back per field path. Nothing here is a hand-written push.
import { subscribeReplica, type Client, type ReplicaSubscription } from "@guildkit/client";
import { PlayerRecordSchema, type PlayerRecord } from "./gen/examples/arena/arenapb/arena_pb.js";

/** A row of the panel: a field of the record, by its path (proto JSON name). */
interface Row {
  path: "best" | "lastRound" | "rounds" | "orbs" | "total" | "visits";
  label: string;
  value(r: PlayerRecord): string;
}

const ROWS: readonly Row[] = [
  { path: "best", label: "Best round", value: (r) => String(r.best) },
  { path: "lastRound", label: "Last round scored", value: (r) => String(r.lastRound) },
  { path: "rounds", label: "Rounds scored in", value: (r) => String(r.rounds) },
  { path: "orbs", label: "Orbs picked up", value: (r) => String(r.orbs) },
  { path: "total", label: "Points, all rounds", value: (r) => String(r.total) },
  { path: "visits", label: "Visits", value: (r) => String(r.visits) },
];

/** The route that subscribes a session to its own record. */
const ROUTE = "arena.Stats";

/**
 * StatsPanel fills a <dl> with the synced record of the player: a <dd
 * data-field=PATH data-value=VALUE> per field, which flashes when its
 * value changes. The <dl>'s data-state is "subscribing", "synced",
 * "resubscribing" or "unavailable" (the first subscription failed).
 */
export class StatsPanel {
  private sub: ReplicaSubscription<PlayerRecord> | undefined;
  private readonly values = new Map<string, HTMLElement>();
  private generation = 0;

  /** onBest is called with the synced best round score, each time it changes. */
  constructor(
    private readonly list: HTMLElement,
    private readonly onBest: (best: number) => void,
  ) {
    const rows = ROWS.flatMap((row) => {
      const dt = document.createElement("dt");
      dt.textContent = row.label;
      const dd = document.createElement("dd");
      dd.dataset.testid = `stats-${row.path}`;
      dd.dataset.field = row.path;
      dd.textContent = "…";
      this.values.set(row.path, dd);
      return [dt, dd];
    });
    list.replaceChildren(...rows);
  }

  /**
   * watch subscribes to the record of the player client plays, in place of
   * any earlier subscription. A subscription that fails is logged and
   * shown as unavailable: the game goes on without the panel.
   */
  async watch(client: Client): Promise<void> {
    const generation = ++this.generation;
    const old = this.sub;
    this.sub = undefined;
    if (old) void old.close();
    this.list.dataset.state = "subscribing";
    let sub: ReplicaSubscription<PlayerRecord>;
    try {
      sub = await subscribeReplica(client, ROUTE, PlayerRecordSchema, {
        // It subscribes again by itself (after a gap, a reconnection, a
        // server restart), retrying while the player has not rejoined.
        onResubscribe: () => {
          if (generation === this.generation) this.list.dataset.state = "resubscribing";
        },
        onError: (err) => console.warn("arena: stats:", err),
      });
    } catch (err) {
      if (generation !== this.generation) return;
      console.warn("arena: stats: could not subscribe to your record:", err);
      this.list.dataset.state = "unavailable";
      this.list.title = "Your stats are unavailable for now.";
      return;
    }
    if (generation !== this.generation) {
      void sub.close();
      return;
    }
    this.sub = sub;
    this.list.dataset.state = "synced";
    this.list.title = "";
    for (const row of ROWS) {
      sub.on(row.path, (_, r) => this.show(row, r));
      this.show(row, sub.state, false);
    }
    sub.on("", () => {
      if (generation === this.generation && sub.replica.synced) this.list.dataset.state = "synced";
    });
    sub.on("best", (_, r) => this.onBest(r.best));
    sub.on("bestUnixMs", (_, r) => this.showWhen(r));
    this.onBest(sub.state.best);
    this.showWhen(sub.state);
  }

  /** show writes a row's value, flashing it when it changed. */
  private show(row: Row, r: PlayerRecord, flash = true): void {
    const dd = this.values.get(row.path);
    if (!dd) return;
    const text = row.value(r);
    if (dd.textContent === text) return;
    const before = dd.textContent;
    dd.textContent = text;
    dd.dataset.value = text;
    if (flash && before !== "…") {
      dd.classList.remove("flash");
      void dd.offsetWidth; // restart the animation
      dd.classList.add("flash");
    }
  }

  private showWhen(r: PlayerRecord): void {
    const dd = this.values.get("best");
    if (dd) dd.title = r.bestUnixMs ? `on ${new Date(Number(r.bestUnixMs)).toLocaleString()}` : "";
  }
}
