// The benchmark's results: the rows, the markdown tables, and the targets for our tool.

import type { DefragWindow } from "./etcd-log.js";

export type Tool =
  | "talos-etcd-defrag"
  | "talos-etcd-defrag --backend etcd"
  | "etcdctl"
  | "etcd-defrag"
  | "etcd-defrag --move-leader";
export const TOOLS: Tool[] = [
  "talos-etcd-defrag",
  "talos-etcd-defrag --backend etcd",
  "etcdctl",
  "etcd-defrag",
  "etcd-defrag --move-leader",
];
/** Our tool's rows: through the Talos API (apid), and over etcd's own API at the peers' endpoints. */
export const OURS: Tool[] = ["talos-etcd-defrag", "talos-etcd-defrag --backend etcd"];
export const isOurs = (tool: Tool): boolean => OURS.includes(tool);
export const SCENARIOS = ["normal", "short-timeout"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface Row {
  tool: Tool;
  scenario: Scenario;
  ran: boolean;
  note?: string;
  exitCode?: number | null;
  wallMs?: number;
  defragSumMs?: number;
  overheadPct?: number;
  maxBlocked?: number;
  failedOps?: number;
  /** The failed operations by kind and error, as etcd's Go client gave it: "put: etcdserver: request timed out". */
  failedOpErrors?: Record<string, number>;
  opsTotal?: number;
  p99OtherMs?: number;
  maxOtherMs?: number;
  keepaliveGapMs?: number;
  reclaimedBytes?: number;
  /** Reclaimed bytes as a share of the free space before (DB size minus in use): comparable across clusters. */
  reclaimedOfFreePct?: number;
  compacted?: boolean;
  /**
   * Our tool only: process start to its first call. Through the Talos API, the first call a test apid
   * received (its journal); with --backend etcd, the first TCP connection the process opened to an etcd
   * member (seen in /proc/net/tcp, sampled every 2 ms), on which it sends its first call at once.
   */
  startToFirstRpcMs?: number;
  /** Our tool only: the median start to first call of `run --dry-run` on the idle cluster, before the load. */
  idleStartMs?: number;
  peakRssMb?: number;
  /** Our tool only: where the time outside the members' defrags went. */
  overhead?: Overhead | undefined;
}

export interface Overhead {
  /**
   * Where the phases come from: "journal", the Talos API journal (the calls apid received); "etcd log",
   * the first connection to etcd and etcd's own log of each defragment (--backend etcd: no apid).
   */
  source: "journal" | "etcd log";
  /** Process start to the first call (apid's journal) or the first connection to etcd. */
  startMs: number;
  /** The first call to the first defragment: reading the cluster, gates, plan. */
  beforeFirstMs: number;
  /** Between one member's defragment and the next: health check, gates, rule, leadership. */
  betweenMs: number;
  /** After the last defragment: health check, alarms, summary, exit. */
  afterMs: number;
  /** Time the members' defragments took as their callers (apid) saw them, or as etcd logged them. */
  defragMs: number;
}

const MiB = 1024 ** 2;

export function fmt(n: number | undefined, digits = 0): string {
  return n === undefined ? "-" : n.toFixed(digits);
}

export function table(rows: Row[]): string {
  const head = [
    "tool",
    "scenario",
    "wall s",
    "defrag sum s",
    "overhead %",
    "max blocked",
    "failed ops",
    "p99 other ms",
    "max other ms",
    "max keep-alive gap ms",
    "reclaimed MiB",
    "% of free",
    "compacted",
    "start→1st RPC ms",
    "peak RSS MB",
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    if (!r.ran) {
      lines.push(`| ${r.tool} | ${r.scenario} | ${r.note ?? "not run"} |${" |".repeat(head.length - 3)}`);
      continue;
    }
    lines.push(
      `| ${[
        r.tool,
        r.scenario,
        fmt((r.wallMs ?? 0) / 1000, 2),
        fmt((r.defragSumMs ?? 0) / 1000, 2),
        fmt(r.overheadPct, 1),
        fmt(r.maxBlocked),
        `${fmt(r.failedOps)} / ${fmt(r.opsTotal)}`,
        fmt(r.p99OtherMs, 1),
        fmt(r.maxOtherMs, 1),
        fmt(r.keepaliveGapMs),
        fmt((r.reclaimedBytes ?? 0) / MiB, 1),
        fmt(r.reclaimedOfFreePct, 1),
        r.compacted ? "yes" : "no",
        fmt(r.startToFirstRpcMs),
        fmt(r.peakRssMb, 0),
      ].join(" | ")} |`,
    );
  }
  const ours = rows.filter((r) => r.overhead !== undefined);
  if (ours.length > 0) {
    lines.push(
      "",
      "Where our overhead goes (ms; through the Talos API from its journal, with --backend etcd from the first connection to etcd and etcd's log):",
      "",
      "| tool | scenario | start → 1st call | reads, gates, plan | between members | after the last | total | defrag (apid or etcd's log) |",
      "|---|---|---|---|---|---|---|---|",
    );
    for (const r of ours) {
      const o = r.overhead;
      if (o === undefined) continue;
      const total = o.startMs + o.beforeFirstMs + o.betweenMs + o.afterMs;
      lines.push(
        `| ${[r.tool, r.scenario, o.startMs, o.beforeFirstMs, o.betweenMs, o.afterMs, total, o.defragMs].map((v) => (typeof v === "number" ? fmt(v) : v)).join(" | ")} |`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** "etcd 3.6.16", from the binary the harness runs. */
export interface Target {
  target: string;
  /** Ours per scenario, with the peers' values where they help to compare. */
  measured: string;
  met: boolean | "n/a";
}

/** The issue's targets for our tool, checked against this run's rows. */
export function targets(rows: Row[], preset: string): Target[] {
  const ours = rows.filter((r) => isOurs(r.tool) && r.ran);
  if (ours.length === 0) return [];
  // "Talos normal", "etcd short-timeout": which backend, which scenario.
  const name = (r: Row): string => `${r.tool === "talos-etcd-defrag" ? "Talos" : "etcd"} ${r.scenario}`;
  const per = (f: (r: Row) => string): string => ours.map((r) => `${name(r)} ${f(r)}`).join(", ");
  const peer = (tool: Tool, scenario: Scenario): Row | undefined =>
    rows.find((r) => r.tool === tool && r.scenario === scenario && r.ran);
  const overheadPeers = [...new Set(ours.map((r) => r.scenario))]
    .map((scenario) =>
      (["etcdctl", "etcd-defrag", "etcd-defrag --move-leader"] as Tool[])
        .map((t) => peer(t, scenario))
        .filter((p): p is Row => p !== undefined && (p.maxBlocked ?? 0) <= 1)
        .map((p) => `${p.tool} ${scenario} ${fmt(p.overheadPct, 1)}%`)
        .join(", "),
    )
    .filter((s) => s !== "");
  // Each tool gets its own (identically built, randomly filled) cluster: compare the share of
  // the free space reclaimed, not raw bytes.
  const reclaimDiffs = ours.map((r) => {
    const e = peer("etcdctl", r.scenario)?.reclaimedOfFreePct;
    return e === undefined ? undefined : (r.reclaimedOfFreePct ?? 0) - e;
  });
  return [
    {
      target: "at most one member blocked at any moment",
      measured: per((r) => fmt(r.maxBlocked)),
      met: ours.every((r) => r.maxBlocked === 1),
    },
    {
      target: "no failed client operations",
      measured: per((r) => `${fmt(r.failedOps)} of ${fmt(r.opsTotal)}`),
      met: ours.every((r) => r.failedOps === 0),
    },
    {
      target: "overhead ≤ 2% of wall time (default preset)",
      measured:
        per((r) => `${fmt(r.overheadPct, 1)}% (${fmt((r.wallMs ?? 0) - (r.defragSumMs ?? 0))} ms)`) +
        (overheadPeers.length > 0
          ? `; peers that kept one member at a time: ${overheadPeers.join("; ")}`
          : ""),
      met: preset === "default" ? ours.every((r) => (r.overheadPct ?? 100) <= 2) : "n/a",
    },
    {
      target: "reclaims what etcdctl defrag does (share of free space, within 2 points)",
      measured: reclaimDiffs.every((x) => x === undefined)
        ? "etcdctl not run"
        : ours
            .map(
              (r) =>
                `${name(r)} ${fmt(r.reclaimedOfFreePct, 1)}% (etcdctl ${fmt(peer("etcdctl", r.scenario)?.reclaimedOfFreePct, 1)}%)`,
            )
            .join(", "),
      met: reclaimDiffs.every((x) => x === undefined)
        ? "n/a"
        : reclaimDiffs.every((x) => x !== undefined && Math.abs(x) <= 2),
    },
    {
      target: "CLI start to first call ≤ 100 ms on an idle machine (the image's Node and compile cache)",
      measured:
        per((r) => `${fmt(r.idleStartMs)} ms`) +
        `; under the benchmark's load ${ours.map((r) => `${fmt(r.startToFirstRpcMs)} ms`).join(", ")}`,
      met: ours.every((r) => (r.idleStartMs ?? Infinity) <= 100),
    },
    {
      target: "peak RSS < 100 MB",
      measured: per((r) => `${fmt(r.peakRssMb)} MB`),
      met: ours.every((r) => (r.peakRssMb ?? Infinity) < 100),
    },
  ];
}

export function targetsTable(list: Target[]): string {
  if (list.length === 0) return "";
  const lines = [
    "",
    "Targets for talos-etcd-defrag (both backends):",
    "",
    "| target | measured | met |",
    "|---|---|---|",
  ];
  for (const t of list)
    lines.push(`| ${t.target} | ${t.measured} | ${t.met === "n/a" ? "n/a" : t.met ? "yes" : "**no**"} |`);
  return lines.join("\n") + "\n";
}

/** Most members whose defrag windows (etcd's own times) overlap at one moment. */
export function maxOverlap(windows: DefragWindow[]): number {
  const events = windows.flatMap((w) => [
    { t: w.start, d: 1 },
    { t: w.end, d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let cur = 0;
  let max = 0;
  for (const e of events) {
    cur += e.d;
    max = Math.max(max, cur);
  }
  return max;
}
