// The run's options, what it is given, and what every step works with. The result and the
// ports are the shared contract: src/core/result.ts, src/core/ports.ts.

import type { Backend } from "../core/backend.js";
import type { AffectedEtcdMode, GateOptions } from "../core/gates.js";
import type { Clock, RunReporter, SnapshotStore } from "../core/ports.js";
import type { Rule } from "../core/rule.js";
import type { LiveCluster } from "./live.js";

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
  /** A member whose log shows a defragment finished less than this long ago is skipped; 0: never. */
  minIntervalMs: number;
  /** After a leader election, how long the cluster must have been stable before a member starts; 0: never waits. */
  electionSettleMs: number;
  /** On SIGTERM: how long to wait for the member in flight before giving up on it. */
  shutdownGraceMs: number;
  pollIntervalMs: number;
  heartbeatMs: number;
  /** Compact etcd's history to the current revision before the plan (backends that can). */
  compact: boolean;
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
  /** The one owner of every reading of the cluster. */
  live: LiveCluster;
  gateOpts: GateOptions;
}
