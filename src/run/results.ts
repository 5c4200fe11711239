// The one place that writes the run's per-member results, and the arithmetic on them.

import { DefragError } from "../core/errors.js";
import type { GateFailure } from "../core/gates.js";
import { isLeader, type MemberAlarm, type MemberStatus, type NodeView } from "../core/model.js";
import type { PlanItem } from "../core/plan.js";
import { formatMemberId } from "../core/units.js";
import type {
  MemberAction,
  MemberResult,
  RaisedAlarm,
  RunResult,
  RunResultKind,
  RunStop,
  Sizes,
  SnapshotResult,
} from "./types.js";

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

  /** The snapshot taken before the first defragment, if any. */
  snapshot: SnapshotResult | undefined;

  add(result: MemberResult): void {
    this.members.push(result);
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
      refusals: extra.refusals ?? [],
      startedAt: this.startedAt,
      ...(this.snapshot ? { snapshot: this.snapshot } : {}),
      ...(extra.error ? { error: extra.error } : {}),
    };
  }
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
