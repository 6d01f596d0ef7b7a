// The JSON of package admin's View (admin/view.go, admin/snapshot.go).

export interface View {
  time: string;
  serving: string;
  actions: boolean;
  nodes: NodeView[];
}

export interface NodeView {
  addr: string;
  name: string;
  endpoint: string;
  services: string[];
  member: boolean;
  available: boolean;
  started: string;
  uptime_seconds: number;
  reachable: boolean;
  error?: string;
  snapshot?: Snapshot;
  rates: Rates;
  rpc?: RPCView[];
}

export interface Rates {
  messages: number;
  system_messages: number;
  dead_letters: number;
  panics: number;
  restarts: number;
  gateway_responses: number;
  gateway_errors: number;
  pushes: number;
}

export interface RPCView {
  side: string;
  method: string;
  rate: number;
  p50?: number;
  p99?: number;
  calls: number;
  errors: number;
}

export interface Snapshot {
  node: string;
  addr: string;
  time: string;
  actor: {
    Actors: number;
    Spawned: number;
    Restarts: number;
    DeadLetters: number;
    Timers: number;
    Messages: number;
    SystemMessages: number;
    Panics: number;
  };
  top: { pid: string; messages: number; names?: string[] }[] | null;
  gateway?: {
    conns: number;
    listeners: { Kind: string; Opened: number; Open: number }[];
    responses: number;
    errors: number;
    pushes: number;
    kicks: number;
    slow_clients: number;
  };
  grains?: {
    kinds: string[];
    stats: { Active: number; Activations: number; Deactivations: number; Handovers: number; Flushes: number; FlushErrors: number };
    active?: Record<string, number>;
  }[];
  rpc_timed: boolean;
  drainable: boolean;
  lease?: { renewals: number; failures: number; grants: number; mean_renew_seconds: number };
  failures?: Failure[];
  failures_total: number;
  failures_kept: boolean;
  tables?: TableSet[];
  reloaders?: Reloader[];
}

/** A table set's status (table.Status). */
export interface TableSet {
  set: string;
  dir: string;
  version: { hash: string; loaded: string };
  tables: { file: string; rows: number; hash: string }[] | null;
  loads: number;
  unchanged: number;
  failures: number;
  last_error?: string;
}

/** A reloader (hot-fix modules) and its items (admin.ReloaderStatus). */
export interface Reloader {
  name: string;
  items: { name: string; version: string; previous?: string; changed?: boolean; error?: string }[];
  error?: string;
}

/** The answer of a reload (admin.TablesReply). */
export interface ReloadReply {
  results?: { set: string; version: { hash: string }; previous: { hash: string }; changed: boolean; error?: string }[];
  reloaders?: Reloader[];
  ok: boolean;
  error?: string;
}

export interface Failure {
  kind: string;
  time: string;
  pid: string;
  names?: string[];
  where: string;
  message_type?: string;
  reason: string;
  stack?: string;
}
