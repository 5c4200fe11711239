// The decisions of leader election on a coordination.k8s.io/v1 Lease, without the client:
// is the lease free, ours, expired, or held by someone else, and for how long. Pure, so that
// the unit tests drive it with a fake clock (test/unit/lease-record.test.ts).

/** What this tool reads of a Lease. */
export interface LeaseRecord {
  /** Empty or undefined: released (nobody holds it). */
  holder: string | undefined;
  durationSeconds: number | undefined;
  acquireTime: Date | undefined;
  renewTime: Date | undefined;
  transitions: number;
  resourceVersion: string;
}

/**
 * When we last saw the lease change, on our own monotonic clock: a lease that has not been
 * renewed for its whole duration as we watched it has expired, whatever the holder's clock says.
 */
export interface Observation {
  resourceVersion: string;
  /** Our monotonic milliseconds when this resourceVersion was first seen. */
  sinceMs: number;
}

export type Verdict =
  | { kind: "free"; reason: "released" | "expired" | "ours" }
  | { kind: "held"; holder: string; since: Date | undefined; expiresInMs: number };

/**
 * Is the lease free for `identity` to take? Expired means: by the API server's clock (from the
 * response's Date header, when there is one), renewTime + duration has passed; or, without relying on
 * any clock but ours, the lease has not changed for its whole duration while we watched.
 */
export function judge(
  record: LeaseRecord,
  identity: string,
  now: { serverMs: number | undefined; monotonicMs: number },
  observed: Observation | undefined,
): Verdict {
  const holder = record.holder ?? "";
  if (holder === "") return { kind: "free", reason: "released" };
  if (holder === identity) return { kind: "free", reason: "ours" };
  const durationMs = (record.durationSeconds ?? 0) * 1000;
  // By the server's clock. Its Date header is truncated to the second, so it errs on the side of "held".
  const renewedMs = (record.renewTime ?? record.acquireTime)?.getTime();
  const byServer =
    now.serverMs !== undefined && renewedMs !== undefined
      ? renewedMs + durationMs - now.serverMs
      : Number.POSITIVE_INFINITY;
  // By our own watch of it: unchanged for a whole duration.
  const byWatch =
    observed !== undefined && observed.resourceVersion === record.resourceVersion
      ? observed.sinceMs + durationMs - now.monotonicMs
      : durationMs;
  if (byServer < 0 || byWatch < 0) return { kind: "free", reason: "expired" };
  return { kind: "held", holder, since: record.acquireTime, expiresInMs: Math.min(byServer, byWatch) };
}

/** The observation after reading `record`: kept while the lease is unchanged, restarted when it changed. */
export function observe(
  previous: Observation | undefined,
  record: LeaseRecord,
  monotonicMs: number,
): Observation {
  return previous !== undefined && previous.resourceVersion === record.resourceVersion
    ? previous
    : { resourceVersion: record.resourceVersion, sinceMs: monotonicMs };
}

/** The spec to write when taking the lease (new holder: a transition) or renewing it (ours already). */
export function takenSpec(
  record: LeaseRecord | undefined,
  identity: string,
  durationSeconds: number,
  now: Date,
): { holder: string; durationSeconds: number; acquireTime: Date; renewTime: Date; transitions: number } {
  const ours = record !== undefined && record.holder === identity;
  return {
    holder: identity,
    durationSeconds,
    acquireTime: ours && record.acquireTime !== undefined ? record.acquireTime : now,
    renewTime: now,
    // Every change of holder of an existing lease is a transition, as client-go counts them.
    transitions: record === undefined ? 0 : record.transitions + (ours ? 0 : 1),
  };
}
