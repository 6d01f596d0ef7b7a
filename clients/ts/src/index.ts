/**
 * @guildkit/client: a TypeScript client for guild gateways over WebSocket
 * (protocol version 1, docs/PROTOCOL.md).
 *
 * ```ts
 * const c = await connect({ url: "ws://localhost:8080/ws", token });
 * const reply = await c.request("chat.Say", SayRequestSchema, { text: "hi" }, SayReplySchema);
 * const off = c.onPush("chat.Line", LineSchema, (line) => console.log(line.text));
 * // Property sync: a live copy of a grain's state.
 * const sub = await subscribeReplica(c, "sync.Subscribe", PlayerSchema);
 * sub.on("stats.hp", (_, p) => console.log(p.stats?.hp));
 * ```
 */
export { connect, DEFAULT_CLIENT_NAME, MAX_RETRIES } from "./client.js";
export type { Client, ConnectOptions, ReconnectEvent, ReconnectOptions, RequestOptions } from "./client.js";
export { PROTOCOL_VERSION } from "./conn.js";
export { Code, codeName, FIRST_GAME_CODE } from "./codes.js";
export type { CodeName } from "./codes.js";
export { GOING_AWAY, GuildError, isGoingAway, isGuildError } from "./errors.js";
export type { WebSocketConstructor, WebSocketLike } from "./websocket.js";
/** The protocol's own messages (guild.gate.v1), for tests and tools. */
export * as gate from "./gen/gate/gatepb/gate_pb.js";
export { DeltaError, GapError, MAX_PENDING, pathMatches, Replica } from "./replica.js";
export type { ChangeCallback, ReplicaOptions } from "./replica.js";
/** Property sync's wire form (guild.propsync): Delta, Op, Step, Subscribe, Unsubscribe. */
export * as propsync from "./gen/propsync/propsyncpb/propsync_pb.js";
export { DEFAULT_PUSH_ROUTE, subscribeReplica } from "./sync.js";
export type { ReplicaSubscription, SubscribeReplicaOptions } from "./sync.js";
