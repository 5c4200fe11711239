// The run's options, its result, and what it reports while it goes.

import type { Backend } from "../core/backend.js";
import type { DefragError } from "../core/errors.js";
import type { AffectedEtcdMode, GateFailure } from "../core/gates.js";
import { ETCD_DEFAULT_QUOTA_BYTES } from "../core/member-config.js";
import type { Rule } from "../core/rule.js";
import type { Clock } from "./clock.js";

export type MoveLeader = "auto" | "always" | "never";

export interface RunOptions {
  rule: Rule;
  /** --quota-bytes: every member's quota, instead of the one configured on it. */
  quotaBytes?: number;
  /** NOSPACE is disarmed only when every member is below this share of the quota; 0: never. */
  nospaceDisarmBelow: number;
  /** The longest one member's defragment call may take. */
  timeoutMs: number;
  moveLeader: MoveLeader;
  allowDowntime: boolean;
  dryRun: boolean;
  /** Settle time after a member is healthy again, before the next one. */
  pauseMs: number;
  /** Explicit nodes, or empty to discover them from the member list. */
  nodes: readonly string[];
  maxAppliedLag: number;
  /** A member on an etcd with the snapshot/defragment bug: defragmented only while caught up, or the run refused. */
  affectedEtcd: AffectedEtcdMode;
  /** How long a member may take to be healthy again after its defrag. */
  healthTimeoutMs: number;
  /** After a defragment call that did not succeed: how long to wait for proof that the member finished. */
  maxWaitMs: number;
  /** On SIGTERM: how long to wait for the member in flight before giving up on it. */
  shutdownGraceMs: number;
  pollIntervalMs: number;
  heartbeatMs: number;
}

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
}

/** Why the run stopped early: a refusal (a gate, before anything changed) or a failure. */
export interface RunStop {
  kind: "failed" | "refused";
  error: DefragError;
  /** The gates that failed, for a refusal. */
  refusals?: GateFailure[];
}

/** Where the orchestrator tells what it does; src/report renders it. */
export interface RunReporter {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** Called at a steady interval while a member defragments. */
  heartbeat(node: string, elapsedMs: number): void;
  /** The heartbeat's member is done (clears a live progress line). */
  heartbeatDone(): void;
}

/** Where snapshots are kept (--snapshot-dir): src/snapshot/file-store.ts. */
export interface SnapshotStore {
  /** Where, for messages. */
  readonly where: string;
  /** A new snapshot of `node`'s member; nothing is kept unless committed. */
  create(node: string): Promise<SnapshotWriter>;
}

export interface SnapshotWriter {
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Checks the snapshot (etcd's sha256 in its last 32 bytes matches the rest), keeps it, and removes the
   * oldest beyond the store's limit. Rejects, keeping nothing, when the check fails.
   */
  commit(): Promise<{ path: string; bytes: number; removed: string[] }>;
  /** Discards what was written. */
  abort(): Promise<void>;
}

export interface SnapshotResult {
  node: string;
  path: string;
  bytes: number;
}

export interface RunDeps {
  clock: Clock;
  /** Take a snapshot before the first defragment into this store (--snapshot-dir). */
  snapshots?: SnapshotStore | undefined;
  /** Aborted by SIGTERM/SIGINT: start nothing new. */
  signal: AbortSignal;
  reporter: RunReporter;
}

/** What every step of the run works with. */
export interface RunContext extends RunDeps {
  backend: Backend;
  opts: RunOptions;
  /** Each member's quota by node, read at the start (etcd's quota-backend-bytes, or --quota-bytes). */
  quotas: Map<string, number>;
}

/** The quota that applies to `node`: as read at the start, else --quota-bytes, else etcd's default. */
export function quotaOf(ctx: Pick<RunContext, "quotas" | "opts">, node: string): number {
  return ctx.quotas.get(node) ?? ctx.opts.quotaBytes ?? ETCD_DEFAULT_QUOTA_BYTES;
}
