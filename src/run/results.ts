// The one place that writes the run's per-member results, and the arithmetic on them.

import { DefragError } from "../core/errors.js";
import type { GateFailure } from "../core/gates.js";
import { isLeader, type NodeView } from "../core/model.js";
import type { PlanItem } from "../core/plan.js";
import {
  reclaimedBytes,
  sizes,
  type HashCheck,
  type MemberAction,
  type MemberResult,
  type RaisedAlarm,
  type RunResult,
  type RunResultKind,
  type RunStop,
  type SnapshotResult,
} from "../core/result.js";
import { formatMemberId } from "../core/units.js";

/** A member's result as planned, before anything was done to it. */
export function planned(p: PlanItem, action: MemberAction, reason: string = p.reason): MemberResult {
  return {
    node: p.node,
    memberId: formatMemberId(p.memberId),
    name: p.name,
    action,
    reason,
    isLeader: p.isLeader,
    before: sizes(p.status),
    notes: [],
  };
}

export class Results {
  private readonly members: MemberResult[] = [];
  private readonly startedAt: Date;
  private readonly t0: number;

  constructor(private readonly now: () => number) {
    this.t0 = now();
    this.startedAt = new Date(this.t0);
  }

  /** Members a gate made the run skip while it went on (disk): listed among the result's refusals. */
  private readonly skippedBy: GateFailure[] = [];

  skippedByGate(f: GateFailure): void {
    this.skippedBy.push(f);
  }

  /** The snapshot taken before the first defragment, if any. */
  snapshot: SnapshotResult | undefined;
  /** --compact's revision, and the data check, when made. */
  compactedTo: string | undefined;
  hashCheck: HashCheck | undefined;

  add(result: MemberResult): void {
    this.members.push(result);
  }

  /** Whether `node` has its result already. */
  has(node: string): boolean {
    return this.members.some((m) => m.node === node);
  }

  /** The members defragmented so far, in order. */
  defragmentedNodes(): string[] {
    return this.members.filter((m) => m.action === "defragmented").map((m) => m.node);
  }

  get defragmented(): number {
    return this.members.filter((m) => m.action === "defragmented").length;
  }

  finish(
    result: RunResultKind,
    extra: {
      error?: RunStop["error"];
      refusals?: GateFailure[];
      alarmsDisarmed?: string[];
      alarmsRaised?: RaisedAlarm[];
    } = {},
  ): RunResult {
    return {
      result,
      members: [...this.members],
      reclaimedBytes: this.members.reduce((sum, m) => sum + reclaimedBytes(m), 0),
      durationMs: this.now() - this.t0,
      alarmsDisarmed: extra.alarmsDisarmed ?? [],
      alarmsRaised: extra.alarmsRaised ?? [],
      refusals: [...(extra.refusals ?? []), ...this.skippedBy],
      startedAt: this.startedAt,
      ...(this.snapshot ? { snapshot: this.snapshot } : {}),
      ...(this.compactedTo !== undefined ? { compactedTo: this.compactedTo } : {}),
      ...(this.hashCheck ? { hashCheck: this.hashCheck } : {}),
      ...(extra.error ? { error: extra.error } : {}),
    };
  }
}

/**
 * The one way a run ends early: every member without a result yet gets `pending`'s (not reached,
 * or skipped as planned), and a stop before anything was defragmented that is a refusal is a
 * refusal; anything else is a failure. `alarmsRaised` as last read.
 */
export function stopped(
  results: Results,
  stop: RunStop,
  pending: readonly MemberResult[],
  alarmsRaised: RaisedAlarm[],
): RunResult {
  for (const m of pending) if (!results.has(m.node)) results.add(m);
  const kind = stop.kind === "refused" && results.defragmented === 0 ? "refused" : "failed";
  return results.finish(kind, { error: stop.error, refusals: stop.refusals ?? [], alarmsRaised });
}

/**
 * What every planned member without a result becomes when the run stops: not reached; once the
 * members are under way, one the plan skips stays skipped.
 */
export function pendingAfterStop(
  plan: readonly PlanItem[],
  stop: RunStop,
  underWay: boolean,
): MemberResult[] {
  const reason = stop.notReached ?? `not reached: ${stop.error.message}`;
  return plan.map((p) =>
    underWay && !p.defragment ? planned(p, "skipped") : planned(p, "not-reached", reason),
  );
}

/** A node the run did not reach, from the first reading (it may not have answered). */
export function notReachedNode(n: NodeView, reason: string): MemberResult {
  return {
    node: n.node,
    memberId: n.ok ? formatMemberId(n.status.memberId) : "",
    name: n.name,
    action: "not-reached",
    reason,
    isLeader: n.ok && isLeader(n.status),
    notes: [],
    ...(n.ok ? { before: sizes(n.status) } : {}),
  };
}

/** The error of a refusal by these gates. */
export function refusal(refusals: GateFailure[]): DefragError {
  return new DefragError("refused", `refused: ${refusals.map((f) => f.message).join("; ")}`);
}
