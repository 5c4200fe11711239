// The run's result: what happened to each member and to the cluster, as the summary, the JSON
// and the metrics report it. Pure data and the arithmetic on it.

import type { DefragError } from "./errors.js";
import type { GateFailure } from "./gates.js";
import type { MemberAlarm, MemberStatus } from "./model.js";
import { formatMemberId } from "./units.js";

export interface RaisedAlarm {
  alarm: string;
  /** The member's id as etcd prints it (16 hex digits). */
  member: string;
}

export interface Sizes {
  dbSize: number;
  dbSizeInUse: number;
}

export type MemberAction = "defragmented" | "skipped" | "would-defragment" | "failed" | "not-reached";

export interface MemberResult {
  node: string;
  memberId: string;
  name: string;
  action: MemberAction;
  reason: string;
  isLeader: boolean;
  before?: Sizes;
  after?: Sizes;
  /** The defragment itself (from the call until the member was seen finished). */
  durationMs?: number;
  /** How long etcd itself was blocked, from the durations it logged. */
  blockedMs?: number;
  /** The member's etcd quota the run judged it by (its quota-backend-bytes, or --quota-bytes). */
  quotaBytes?: number;
  /** Name of the member that took over leadership before this one was defragmented. */
  leadershipMovedTo?: string;
  notes: string[];
}

/**
 * "alarm-raised": the run did its work but the cluster still has an alarm raised at the end
 * (NOSPACE left armed: etcd refuses writes). Not a success: the CronJob fails and alerts fire.
 */
export type RunResultKind = "success" | "nothing-to-do" | "dry-run" | "failed" | "refused" | "alarm-raised";

export interface SnapshotResult {
  node: string;
  path: string;
  bytes: number;
}

export interface RunResult {
  result: RunResultKind;
  members: MemberResult[];
  reclaimedBytes: number;
  durationMs: number;
  alarmsDisarmed: string[];
  /** Alarms still raised when the run ended (as last read). */
  alarmsRaised: RaisedAlarm[];
  refusals: GateFailure[];
  error?: DefragError;
  startedAt: Date;
  /** The snapshot taken before the first defragment, when asked for. */
  snapshot?: SnapshotResult;
  /** --compact: the revision etcd's history was compacted to before the plan. */
  compactedTo?: string;
  /** The members' data compared before the first and after the last defragment (where the backend can). */
  hashCheck?: HashCheck;
}

/**
 * etcd's HashKV of every member before the first defragment (one hash at `revision`) and after the
 * last. outcome: "same" (the same hash at the same revision), "agree" (that revision was compacted
 * meanwhile: the members agree at a newer one), "differ" (the run failed), "unchecked" (the run
 * ended before, or the second reading could not be made).
 */
export interface HashCheck {
  revision: string;
  before: number;
  after?: { revision: string; hash: number; sameRevision: boolean };
  outcome: "same" | "agree" | "differ" | "unchecked";
}

/** Why the run stops early: a refusal (a gate, before anything changed) or a failure. */
export interface RunStop {
  kind: "failed" | "refused";
  error: DefragError;
  /** The gates that failed, for a refusal. */
  refusals?: GateFailure[];
  /** The reason given to every member not reached; default "not reached: <the error>". */
  notReached?: string;
}

export function sizes(s: Pick<MemberStatus, "dbSize" | "dbSizeInUse">): Sizes {
  return { dbSize: s.dbSize, dbSizeInUse: s.dbSizeInUse };
}

export function raised(a: MemberAlarm): RaisedAlarm {
  return { alarm: a.alarm, member: formatMemberId(a.memberId) };
}

export function alarmText(a: RaisedAlarm): string {
  return `${a.alarm} on ${a.member}`;
}

/** What one member's defragment gave back: 0 unless it was defragmented with both sizes known. */
export function reclaimedBytes(m: Pick<MemberResult, "action" | "before" | "after">): number {
  return m.action === "defragmented" && m.before && m.after ? m.before.dbSize - m.after.dbSize : 0;
}
