// What the page tells a player when something goes wrong: sentences, not
// codes. The SDK's errors carry a protocol code (GuildError.code) and,
// from the server, a message meant for people.
import { Code, isGuildError, type GuildError } from "@guildkit/client";

/** Why a session ended (onClose's error), and what happens next. */
export function closedMessage(err: GuildError | undefined, reconnecting: boolean): string {
  const next = reconnecting ? " Reconnecting…" : " Reload the page to play again.";
  if (err === undefined) return `Disconnected.${reconnecting ? next : ""}`;
  // isGoingAway(err), without narrowing err away.
  if (err.goingAway) return `The server is restarting or shutting down.${next}`;
  switch (err.code) {
    case Code.DeadlineExceeded:
      return `The server stopped answering.${next}`;
    case Code.PermissionDenied:
      return `The server closed this session.${next}`;
    case Code.Unavailable:
      return `The connection to the server was lost.${next}`;
    default:
      return `The connection ended (${err.codeName}).${next}`;
  }
}

/** Why joining failed, for the join form. */
export function joinErrorMessage(err: unknown): string {
  if (isGuildError(err)) {
    switch (err.code) {
      case Code.AlreadyExists:
      case Code.InvalidArgument:
        // The server's own words: "the name "ada" is taken by a player
        // online: pick another".
        return sentence(err.message);
      case Code.Unavailable:
      case Code.DeadlineExceeded:
        return "The server cannot be reached. Is guild demo still running?";
    }
    return sentence(`Could not join: ${err.message}`);
  }
  return sentence(`Could not join: ${err instanceof Error ? err.message : String(err)}`);
}

/** Why connecting failed, for the join form. */
export function connectErrorMessage(url: string): string {
  return `The server at ${url} cannot be reached. Is guild demo running?`;
}

/** Any other failed request, for the chat log or the status line. */
export function requestErrorMessage(err: unknown): string {
  if (isGuildError(err)) {
    if (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded) return "not connected to the server";
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

/** sentence capitalises s and ends it with a full stop. */
function sentence(s: string): string {
  const t = s.trim();
  if (t === "") return t;
  const c = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(c) ? c : `${c}.`;
}
