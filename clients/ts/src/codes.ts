/**
 * Status codes of the guild client protocol (docs/PROTOCOL.md, section 6).
 * Codes 0 to 16 mean what gRPC's codes mean, 17 to 999 are reserved and
 * codes from 1000 up belong to the game.
 */
export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

/** The name of one of the protocol's own codes, such as "NotFound". */
export type CodeName = keyof typeof Code;

const names: readonly string[] = Object.keys(Code);

/** The first code that belongs to the game rather than the protocol. */
export const FIRST_GAME_CODE = 1000;

/**
 * codeName returns the name PROTOCOL.md gives a code: "NotFound" for 5,
 * "Game" for the game's own codes (1000 and up), "Reserved" for 17 to 999.
 */
export function codeName(code: number): string {
  if (Number.isInteger(code) && code >= 0 && code < names.length) {
    return names[code]!;
  }
  return code >= FIRST_GAME_CODE ? "Game" : "Reserved";
}
