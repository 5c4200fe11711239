// When each member was really defragmenting, from etcd's own log: the backend logs
// the end of a defragmentation with the time it took, measured inside etcd from
// before it takes the backend's locks. Exact, and costs the cluster nothing, unlike
// polling every member's /metrics for etcd_disk_defrag_inflight.

import { readFileSync } from "node:fs";

export interface DefragWindow {
  member: number;
  /** ms since the epoch. */
  start: number;
  end: number;
}

const UNIT_MS: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 1e-3,
  µs: 1e-3,
  ns: 1e-6,
};

/** A Go time.Duration string ("1m2.5s", "25.08ms", "850µs") in milliseconds. */
export function goDurationMs(text: string): number {
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/.exec(rest);
    const unit = m?.[2];
    if (m === null || unit === undefined) throw new Error(`not a Go duration: ${text}`);
    total += Number(m[1]) * (UNIT_MS[unit] ?? Number.NaN);
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** The defragmentations a member's zap JSON log records that ended after `since`. */
export function defragWindows(logFile: string, member: number, since: number): DefragWindow[] {
  const windows: DefragWindow[] = [];
  for (const line of readFileSync(logFile, "utf8").split("\n")) {
    // etcd 3.5 and 3.6 say "finished defragmenting directory", 3.4 "defragmented".
    if (!line.includes('"finished defragmenting directory"') && !line.includes('"msg":"defragmented"'))
      continue;
    const entry = JSON.parse(line) as { ts?: string; took?: string };
    if (entry.ts === undefined || entry.took === undefined) continue;
    const end =
      Date.parse(entry.ts) +
      Number(/\.\d{3}(\d*)Z$/.exec(entry.ts)?.[1]?.padEnd(3, "0").slice(0, 3) ?? 0) / 1000;
    if (end < since) continue;
    windows.push({ member, start: end - goDurationMs(entry.took), end });
  }
  return windows;
}
