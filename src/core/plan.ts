// The plan: for every member, defragment or skip and why; followers first
// (most free space first), the leader last. Pure.

import { formatBytes, formatDuration } from "./units.js";
import { fragmentation, freeBytes, isLeader, type ClusterView, type MemberStatus } from "./model.js";
import { ruleInput, type Rule } from "./rule.js";

export interface PlanItem {
  node: string;
  name: string;
  memberId: bigint;
  isLeader: boolean;
  isLearner: boolean;
  defragment: boolean;
  reason: string;
  status: MemberStatus;
}

export interface PlanOptions {
  rule: Rule;
  /** The quota that applies to a node's member (resolved in one place: core/quota.ts). */
  quota: (node: string) => number;
  /** A member defragmented (by its log) less than this long ago is skipped, whatever the rule; 0: never. */
  minIntervalMs: number;
  /** How long ago the node's member last finished a defragment, when its log shows one. */
  lastDefragmentAgoMs: (node: string) => number | undefined;
}

/** What decides one member: the rule with its quota, and the last defragment against the minimum interval. */
export interface DecideOptions {
  rule: Rule;
  quotaBytes: number;
  minIntervalMs: number;
  lastDefragmentAgoMs: number | undefined;
}

/** NOSPACE is raised for the whole cluster; every member counts as under NOSPACE while it is. */
export function hasNospace(view: ClusterView): boolean {
  return view.alarms.some((a) => a.alarm === "NOSPACE");
}

export function describeSizes(s: Pick<MemberStatus, "dbSize" | "dbSizeInUse">): string {
  return `${formatBytes(freeBytes(s))} free of ${formatBytes(s.dbSize)} (${(fragmentation(s) * 100).toFixed(0)}%)`;
}

/** Evaluates the rule for one member's (fresh) status; `opts.quotaBytes` is that member's quota. */
export function decide(
  status: MemberStatus,
  opts: DecideOptions,
  nospace: boolean,
): { defragment: boolean; reason: string } {
  if (status.isLearner) return { defragment: false, reason: "learner (not a voting member): skipped" };
  const ago = opts.lastDefragmentAgoMs;
  if (opts.minIntervalMs > 0 && ago !== undefined && ago < opts.minIntervalMs) {
    return {
      defragment: false,
      reason: `${describeSizes(status)}, defragmented ${formatDuration(ago)} ago (its etcd log), less than --min-interval ${formatDuration(opts.minIntervalMs)}: skipped whatever the rule says`,
    };
  }
  const verdict = opts.rule.evaluate(ruleInput(status, opts.quotaBytes, nospace));
  const extra = nospace ? ", NOSPACE alarm raised" : "";
  return {
    defragment: verdict,
    reason: `${describeSizes(status)}${extra}, rule ${verdict ? "true" : "false"}`,
  };
}

export function makePlan(view: ClusterView, opts: PlanOptions): PlanItem[] {
  const nospace = hasNospace(view);
  const items: PlanItem[] = [];
  for (const n of view.nodes) {
    if (!n.ok) continue;
    const decision = decide(
      n.status,
      {
        rule: opts.rule,
        quotaBytes: opts.quota(n.node),
        minIntervalMs: opts.minIntervalMs,
        lastDefragmentAgoMs: opts.lastDefragmentAgoMs(n.node),
      },
      nospace,
    );
    items.push({
      node: n.node,
      name: n.name,
      memberId: n.status.memberId,
      isLeader: isLeader(n.status),
      isLearner: n.status.isLearner,
      ...decision,
      status: n.status,
    });
  }
  return orderForRun(items);
}

/** Followers by free space, most first; then the leader; learners wherever (they are never touched). */
export function orderForRun(items: PlanItem[]): PlanItem[] {
  return [...items].sort((a, b) => {
    if (a.isLeader !== b.isLeader) return a.isLeader ? 1 : -1;
    return freeBytes(b.status) - freeBytes(a.status);
  });
}
