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

  constructor(code: number, message?: string) {
    const name = codeName(code);
    super(message ? message : name);
    this.name = "GuildError";
    this.code = code;
    this.codeName = name;
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

/** unavailable is the error of a request that the connection's end cut off. */
export function unavailable(message: string): GuildError {
  return new GuildError(Code.Unavailable, message);
}
