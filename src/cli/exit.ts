// The only place that decides exit codes: from an error's kind, a run's result,
// the status command's reading, and a usage error of the command line.

import type { ErrorKind } from "../core/errors.js";
import type { RunResultKind } from "../core/result.js";

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

export function exitCodeForRun(result: RunResultKind): number {
  switch (result) {
    case "success":
    case "nothing-to-do":
    case "dry-run":
      return EXIT.ok;
    case "refused":
      return EXIT.refused;
    case "failed":
    case "alarm-raised":
      return EXIT.failure;
  }
}

/** `status`: a member that could not be read is a failure (the table still shows the rest). */
export function exitCodeForStatus(unreadable: number): number {
  return unreadable === 0 ? EXIT.ok : EXIT.failure;
}

/** The command line itself: help asked for is success; anything else wrong with it is a usage error. */
export function exitCodeForCommandLine(helpOrVersion: boolean): number {
  return helpOrVersion ? EXIT.ok : EXIT.usage;
}
