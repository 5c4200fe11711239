// When each member was really defragmenting, from etcd's own log: the backend logs
// the end of a defragmentation with the time it took, measured inside etcd from
// before it takes the backend's locks. Exact, and costs the cluster nothing, unlike
// polling every member's /metrics for etcd_disk_defrag_inflight. The log is read by
// the tool's own parser (src/core/etcd-log.ts), which the run uses the same way.

import { readFileSync } from "node:fs";

import { defragActivity } from "../src/core/etcd-log.js";

export interface DefragWindow {
  member: number;
  /** ms since the epoch. */
  start: number;
  end: number;
}

/** The defragmentations a member's zap JSON log records that ended after `since`. */
export function defragWindows(logFile: string, member: number, since: number): DefragWindow[] {
  const lines = readFileSync(logFile, "utf8").split("\n");
  return defragActivity(lines)
    .finished.filter((f) => f.end >= since)
    .map((f) => ({ member, start: f.end - f.tookMs, end: f.end }));
}
