// The one error type of the tool. Every failure that reaches the user is a
// DefragError: what happened (kind), to which node, why (cause), and what to do
// next (hint). The questions the run asks of an error are answered here, once
// (mayStillBeDefragmenting, failsEverywhere); exit codes are derived from `kind`
// in src/cli/exit.ts.

export type ErrorKind =
  /** Bad flags, environment or configuration: nothing was called. */
  | "config"
  /** The endpoint or node could not be reached (connection refused, DNS, timeout). */
  | "unreachable"
  /** TLS failed: the server's certificate did not verify, or ours was rejected. */
  | "tls"
  /** The credential does not allow the call. */
  | "permission"
  /** The node does not run etcd (not a control-plane node). */
  | "not-control-plane"
  /** A call took longer than its deadline. */
  | "timeout"
  /** The member's etcd answered with an error. */
  | "etcd"
  /** A safety gate refused to go on: nothing was defragmented. */
  | "refused"
  /** Stopped by a signal. */
  | "aborted"
  /** A bug: something that should not happen. */
  | "internal";

export interface DefragErrorOptions {
  node?: string | undefined;
  endpoint?: string | undefined;
  hint?: string | undefined;
  cause?: unknown;
}

/** What an internal error tells the user to do: it is our bug, not their cluster. */
export const BUG_HINT =
  "this is a bug in talos-etcd-defrag, not a problem with the cluster: please report it with this log (run again with --log-format json to include the stack)";

export class DefragError extends Error {
  override readonly name = "DefragError";
  readonly kind: ErrorKind;
  readonly node: string | undefined;
  readonly endpoint: string | undefined;
  readonly hint: string | undefined;

  constructor(kind: ErrorKind, message: string, opts: DefragErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
    this.node = opts.node;
    this.endpoint = opts.endpoint;
    this.hint = opts.hint ?? (kind === "internal" ? BUG_HINT : undefined);
  }

  /** The message a person reads: what, where, and what to do next. */
  describe(): string {
    const where = this.node === undefined ? "" : `node ${this.node}: `;
    const what = this.kind === "internal" ? `internal error: ${this.message}` : this.message;
    const hint = this.hint === undefined ? "" : ` (${this.hint})`;
    return `${where}${what}${hint}`;
  }

  /**
   * Anything thrown that is not a DefragError did not come through a backend's error
   * mapping (a TypeError, say): that is a bug, and is reported as one.
   */
  static from(err: unknown): DefragError {
    if (err instanceof DefragError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new DefragError("internal", message, { cause: err });
  }
}

/** A configuration problem: exit 2, before any call to the cluster. */
export function configError(message: string, hint?: string): DefragError {
  return new DefragError("config", message, { hint });
}

/**
 * After a defragment call failed this way, may the member still be defragmenting?
 * etcd does not stop when the call does: a deadline, a dropped connection or our own
 * cancellation says nothing about the member, so it must be proven finished before
 * any other member is touched. An answer from etcd (or apid) means it did not start.
 */
export function mayStillBeDefragmenting(e: DefragError): boolean {
  return e.kind === "timeout" || e.kind === "unreachable" || e.kind === "aborted" || e.kind === "tls";
}

/**
 * Would this error be the same through any other endpoint or member? Credentials,
 * configuration, a refusal and a stop request do not depend on where a call goes, and a bug
 * does not go away by retrying: trying elsewhere is pointless.
 */
export function failsEverywhere(e: DefragError): boolean {
  return (
    e.kind === "permission" ||
    e.kind === "refused" ||
    e.kind === "tls" ||
    e.kind === "config" ||
    e.kind === "aborted" ||
    e.kind === "internal"
  );
}
