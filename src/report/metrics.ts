// The run's metrics (Prometheus): pushed to a Pushgateway under job "etcd-defrag"
// and a cluster label, and/or written as a text file for node-exporter's textfile
// collector. A failure to publish is a warning; it never changes the run's outcome.

import { renameSync, writeFileSync } from "node:fs";

import { Gauge, Pushgateway, Registry } from "prom-client";

import { GATE_NAMES } from "../core/gates.js";
import { reclaimedBytes, type RunResult } from "../core/result.js";

export const JOB = "etcd-defrag";
export const RESULTS = [
  "success",
  "nothing-to-do",
  "dry-run",
  "failed",
  "refused",
  "alarm-raised",
  "error",
] as const;
export type MetricsResult = (typeof RESULTS)[number];

export interface RunMetrics {
  result: MetricsResult;
  exitCode: number;
  finishedAt: Date;
  run?: RunResult;
}

/** Builds the registry for one run. `last success` is present only when this run succeeded, so that a
 * Pushgateway (POST replaces only the metrics pushed) keeps the previous value after a failed run. */
export function buildRegistry(m: RunMetrics): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const seconds = m.finishedAt.getTime() / 1000;

  gauge("etcd_defrag_last_run_timestamp_seconds", "When the last run finished (unix time).").set(seconds);
  if (m.result === "success" || m.result === "nothing-to-do") {
    gauge(
      "etcd_defrag_last_success_timestamp_seconds",
      "When the last successful run finished (unix time).",
    ).set(seconds);
  }
  const result = gauge("etcd_defrag_run_result", "1 for the last run's result, 0 for the others.", [
    "result",
  ]);
  for (const r of RESULTS) result.set({ result: r }, r === m.result ? 1 : 0);
  gauge("etcd_defrag_run_exit_code", "Exit code of the last run.").set(m.exitCode);
  // Every gate always, 0 when it did not refuse: a family left out would keep an earlier run's value.
  const refused = gauge(
    "etcd_defrag_run_refused",
    "1 for each safety gate that refused the last run, 0 for the others.",
    ["gate"],
  );
  const gates = new Set((m.run?.refusals ?? []).map((r) => r.gate));
  for (const g of GATE_NAMES) refused.set({ gate: g }, gates.has(g) ? 1 : 0);

  const run = m.run;
  if (run === undefined) return registry;
  gauge("etcd_defrag_run_duration_seconds", "Duration of the last run.").set(run.durationMs / 1000);
  gauge("etcd_defrag_reclaimed_bytes", "Bytes reclaimed by the last run, all members.").set(
    run.reclaimedBytes,
  );

  // Both alarms always, 0 when none: a Pushgateway POST replaces only the families pushed, so a family
  // left out would keep an earlier run's value (and its alert) forever.
  const alarm = gauge(
    "etcd_defrag_alarm_raised",
    "How many members have this etcd alarm raised when the last run ended (NOSPACE: etcd refuses writes).",
    ["alarm"],
  );
  for (const name of ["NOSPACE", "CORRUPT"])
    alarm.set({ alarm: name }, run.alarmsRaised.filter((a) => a.alarm === name).length);

  const labels = ["node", "member", "name"];
  const dbSize = gauge("etcd_defrag_member_db_size_bytes", "Member DB file size before/after the last run.", [
    ...labels,
    "phase",
  ]);
  const inUse = gauge(
    "etcd_defrag_member_db_size_in_use_bytes",
    "Member DB size in use before/after the last run.",
    [...labels, "phase"],
  );
  const reclaimed = gauge(
    "etcd_defrag_member_reclaimed_bytes",
    "Bytes reclaimed on the member by the last run.",
    labels,
  );
  const duration = gauge(
    "etcd_defrag_member_defrag_duration_seconds",
    "How long the member's defragment took.",
    labels,
  );
  const action = gauge(
    "etcd_defrag_member_action",
    "1 for what the last run did to the member (defragmented, skipped, would-defragment, failed, not-reached).",
    [...labels, "action"],
  );
  const blocked = gauge(
    "etcd_defrag_member_blocked_seconds",
    "How long etcd itself was blocked defragmenting the member (the durations it logged).",
    labels,
  );
  const quota = gauge(
    "etcd_defrag_member_quota_bytes",
    "The member's etcd quota the last run judged it by (quota-backend-bytes from its etcd spec, etcd's 2 GiB default, or --quota-bytes).",
    labels,
  );
  for (const member of run.members) {
    const l = { node: member.node, member: member.memberId, name: member.name };
    if (member.quotaBytes !== undefined) quota.set(l, member.quotaBytes);
    action.set({ ...l, action: member.action }, 1);
    if (member.before) {
      dbSize.set({ ...l, phase: "before" }, member.before.dbSize);
      inUse.set({ ...l, phase: "before" }, member.before.dbSizeInUse);
    }
    if (member.after) {
      dbSize.set({ ...l, phase: "after" }, member.after.dbSize);
      inUse.set({ ...l, phase: "after" }, member.after.dbSizeInUse);
    }
    if (member.action === "defragmented" && member.before && member.after)
      reclaimed.set(l, reclaimedBytes(member));
    if (member.durationMs !== undefined) duration.set(l, member.durationMs / 1000);
    if (member.blockedMs !== undefined) blocked.set(l, member.blockedMs / 1000);
  }
  return registry;
}

/** Pushes with POST (only these metrics are replaced in the group), with a short timeout. */
export async function pushMetrics(
  registry: Registry,
  opts: { url: string; cluster: string; timeoutMs: number },
): Promise<void> {
  const gateway = new Pushgateway(opts.url, { timeout: opts.timeoutMs }, registry);
  await gateway.pushAdd({ jobName: JOB, groupings: { cluster: opts.cluster } });
}

/** Written to a temporary file and renamed, so that a collector never reads half a file. */
export async function writeMetricsFile(registry: Registry, path: string, cluster: string): Promise<void> {
  registry.setDefaultLabels({ job: JOB, cluster });
  const text = await registry.metrics();
  const temp = `${path}.tmp-${process.pid}`;
  writeFileSync(temp, text);
  renameSync(temp, path);
}
