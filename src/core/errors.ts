// The one error type of the tool. Every failure that reaches the user is a
// DefragError: what happened (kind), to which node, why (cause), and what to do
// next (hint). Exit codes are derived from `kind` in exactly one place
// (src/cli/exit.ts).

export type ErrorKind =
  /** Bad flags, environment or configuration: nothing was called. */
  | "config"
  /** The endpoint or node could not be reached (connection refused, DNS, timeout). */
  | "unreachable"
  /** TLS failed: the server's certificate did not verify, or ours was rejected. */
  | "tls"
  /** The certificate's role does not allow the call. */
  | "permission"
  /** The node does not run etcd (not a control-plane node). */
  | "not-control-plane"
  /** A call took longer than its deadline. */
  | "timeout"
  /** etcd (through Talos) answered with an error. */
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
    this.hint = opts.hint;
  }

  /** The message a person reads: what, where, and what to do next. */
  describe(): string {
    const where = this.node === undefined ? "" : `node ${this.node}: `;
    const hint = this.hint === undefined ? "" : ` (${this.hint})`;
    return `${where}${this.message}${hint}`;
  }

  static from(err: unknown, fallback: ErrorKind = "internal"): DefragError {
    if (err instanceof DefragError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new DefragError(fallback, message, { cause: err });
  }
}

/** A configuration problem: exit 2, before any call to the cluster. */
export function configError(message: string, hint?: string): DefragError {
  return new DefragError("config", message, { hint });
}
