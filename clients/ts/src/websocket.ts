/**
 * The part of the WebSocket API the client uses. The browser's WebSocket,
 * Node 22's global WebSocket and the "ws" package's WebSocket all have it.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  // The event parameters are `any` so that both the DOM's and the "ws"
  // package's event types fit.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onopen: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((ev: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: `WebSocket` in browsers, or `import WebSocket from "ws"`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** readyState of an open WebSocket. */
export const WS_OPEN = 1;

/** bytesOf returns the bytes of a binary message, or undefined for text. */
export function bytesOf(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return undefined;
}
