// The only place that decides exit codes.

import type { ErrorKind } from "../core/errors.js";

export const EXIT = {
  /** Success, nothing to do, or a dry run. */
  ok: 0,
  /** A failure during the run (or a member that could not be read). */
  failure: 1,
  /** Usage or configuration error: nothing was called. */
  usage: 2,
  /** Refused by a safety gate: nothing was defragmented. */
  refused: 3,
} as const;

export function exitCodeFor(kind: ErrorKind): number {
  switch (kind) {
    case "config":
    case "tls":
      // A CA that does not verify the endpoint, or a certificate apid rejects, is a configuration problem.
      return EXIT.usage;
    case "refused":
      return EXIT.refused;
    default:
      return EXIT.failure;
  }
}
