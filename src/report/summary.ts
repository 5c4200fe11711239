// The run's final summary on stdout: a table for people, JSON for programs.

import { formatBytes, formatDuration } from "../core/units.js";
import {
  alarmText,
  reclaimedBytes,
  type HashCheck,
  type MemberResult,
  type RunResult,
} from "../core/result.js";
import { renderTable } from "./status.js";

export function summaryJson(r: RunResult): object {
  return {
    result: r.result,
    startedAt: r.startedAt.toISOString(),
    members: r.members.map((m) => ({
      node: m.node,
      memberId: m.memberId,
      name: m.name,
      action: m.action,
      reason: m.reason,
      isLeader: m.isLeader,
      before: m.before ?? null,
      after: m.after ?? null,
      durationMs: m.durationMs === undefined ? null : Math.round(m.durationMs),
      blockedMs: m.blockedMs === undefined ? null : Math.round(m.blockedMs),
      ...(m.quotaBytes !== undefined ? { quotaBytes: m.quotaBytes } : {}),
      ...(m.leadershipMovedTo !== undefined ? { leadershipMovedTo: m.leadershipMovedTo } : {}),
      notes: m.notes,
    })),
    reclaimedBytes: r.reclaimedBytes,
    durationMs: Math.round(r.durationMs),
    alarmsDisarmed: r.alarmsDisarmed,
    alarmsRaised: r.alarmsRaised,
    snapshot: r.snapshot ?? null,
    compactedTo: r.compactedTo ?? null,
    hashCheck: r.hashCheck ?? null,
    refusals: r.refusals.map((f) => ({
      gate: f.gate,
      message: f.message,
      ...(f.node ? { node: f.node } : {}),
    })),
    ...(r.error ? { error: r.error.describe() } : {}),
  };
}

function count(members: MemberResult[], action: MemberResult["action"]): number {
  return members.filter((m) => m.action === action).length;
}

export function summaryText(r: RunResult): string {
  const parts = (["defragmented", "would-defragment", "skipped", "failed", "not-reached"] as const)
    .map((a) => [a, count(r.members, a)] as const)
    .filter(([, n]) => n > 0)
    .map(([a, n]) => `${n} ${a}`);
  const head =
    `result: ${r.result}` +
    (parts.length > 0 ? ` (${parts.join(", ")})` : "") +
    ` in ${formatDuration(r.durationMs)}` +
    (r.result === "success" || r.reclaimedBytes > 0 ? `, reclaimed ${formatBytes(r.reclaimedBytes)}` : "");
  const rows = r.members.map((m) => [
    m.node,
    m.name || "-",
    m.isLeader ? "*" : "",
    m.action,
    m.before ? formatBytes(m.before.dbSize) : "-",
    m.after ? formatBytes(m.after.dbSize) : "-",
    m.action === "defragmented" && m.before && m.after ? formatBytes(reclaimedBytes(m)) : "-",
    m.durationMs === undefined ? "-" : formatDuration(m.durationMs),
    m.blockedMs === undefined ? "-" : formatDuration(m.blockedMs),
    [m.reason, ...m.notes].join("; "),
  ]);
  const table = renderTable(
    ["NODE", "NAME", "LEADER", "ACTION", "BEFORE", "AFTER", "RECLAIMED", "TIME", "BLOCKED", "REASON"],
    rows,
  );
  const tail = [
    r.snapshot
      ? `snapshot: ${r.snapshot.path} (${formatBytes(r.snapshot.bytes)} from ${r.snapshot.node})`
      : "",
    r.compactedTo !== undefined
      ? `compacted: etcd's history to revision ${r.compactedTo} before the plan`
      : "",
    r.hashCheck ? hashText(r.hashCheck) : "",
    r.alarmsDisarmed.length > 0 ? `alarms disarmed: ${r.alarmsDisarmed.join(", ")}` : "",
    r.alarmsRaised.length > 0 ? `alarms still raised: ${r.alarmsRaised.map(alarmText).join(", ")}` : "",
    ...r.refusals.map((f) => `refused: ${f.message}`),
    r.error && (r.result === "failed" || r.result === "alarm-raised") ? `error: ${r.error.describe()}` : "",
  ].filter((s) => s !== "");
  return [head, table.trimEnd(), ...tail].join("\n") + "\n";
}

function hashText(h: HashCheck): string {
  const before = `hash ${h.before} at revision ${h.revision} before`;
  switch (h.outcome) {
    case "same":
      return `data check: ${before}, the same after (HashKV, every member)`;
    case "agree":
      return `data check: ${before}; revision ${h.revision} compacted meanwhile, every member hashes ${h.after?.hash ?? "?"} at ${h.after?.revision ?? "?"} after`;
    case "differ":
      return `data check: ${before}, DIFFERENT after: see the error`;
    case "unchecked":
      return `data check: ${before}, not checked after`;
  }
}
