import { Code, codeName } from "./codes.js";

/**
 * GuildError is an error with a protocol code: a Response with a non-zero
 * code, a refused handshake, a Close from the gateway, a timeout (4
 * DeadlineExceeded) or a lost connection (14 Unavailable).
 */
export class GuildError extends Error {
  /** The protocol code, such as 16 or a game code like 1001. */
  readonly code: number;
  /** The code's name from PROTOCOL.md, such as "Unauthenticated". */
  readonly codeName: string;
  /**
   * The gateway is going away (shutting down): its Close frame had code
   * 14 (GOING_AWAY) on an open session, or it refused a request as not
   * forwarded. See isGoingAway.
   */
  readonly goingAway: boolean;

  constructor(code: number, message?: string, goingAway = false) {
    const name = codeName(code);
    super(message ? message : name);
    this.name = "GuildError";
    this.code = code;
    this.codeName = name;
    this.goingAway = goingAway;
  }

  override toString(): string {
    return `GuildError: ${this.codeName} (${this.code}): ${this.message}`;
  }
}

/**
 * isGuildError reports whether err is a GuildError and, when code is given,
 * whether it carries that code.
 */
export function isGuildError(err: unknown, code?: number): err is GuildError {
  return err instanceof GuildError && (code === undefined || err.code === code);
}

/**
 * GOING_AWAY is the code of the Close frame a gateway sends when it shuts
 * down (PROTOCOL.md section 3.7): 14, Unavailable. A kick is 7.
 */
export const GOING_AWAY = Code.Unavailable;

/**
 * isGoingAway reports whether err says the gateway is going away (shutting
 * down): onClose gets such an error, and so does onReconnect's cause.
 */
export function isGoingAway(err: unknown): err is GuildError {
  return err instanceof GuildError && err.goingAway;
}

/** unavailable is the error of a request that the connection's end cut off. */
export function unavailable(message: string): GuildError {
  return new GuildError(Code.Unavailable, message);
}
