// `npm run bench`: disruption and correctness of our tool side by side with
// `etcdctl defrag --cluster` and ahrtr/etcd-defrag, on identically fragmented
// 3-member clusters under client load. Prints a markdown table; writes the raw
// results (JSON) and one SVG timeline per scenario and tool to bench/results/.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

import { startHarness, type Harness } from "../test/harness/harness.js";
import type { JournalEntry } from "../test/harness/journal.js";
import { defragWindows, type DefragWindow } from "./etcd-log.js";
import { renderTimeline } from "./svg.js";

const ROOT = resolve(import.meta.dirname, "..");
const MiB = 1024 ** 2;
/** Our tool as the container image runs it: the Dockerfile's ENTRYPOINT (node, its flags, the bundle). */
function imageCommand(): string[] {
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, "Dockerfile"), "utf8"))?.[1];
  const argv = entrypoint === undefined ? [] : (JSON.parse(entrypoint) as string[]);
  const flags = argv.slice(1, -1).filter((a) => a.startsWith("--"));
  return [process.execPath, ...flags, join(ROOT, "dist", "bundle", "talos-etcd-defrag.mjs")];
}
const [NODE = process.execPath, ...TOOL] = imageCommand();
const now = (): number => performance.timeOrigin + performance.now();

interface Preset {
  dbBytes: number;
  liveFraction: number;
  /** The defrag threshold every tool is given: free bytes above this. */
  thresholdBytes: number;
  /** The short-timeout scenario's per-member client timeout. */
  shortTimeout: string;
}

const PRESETS: Record<string, Preset> = {
  smoke: { dbBytes: 24 * MiB, liveFraction: 0.4, thresholdBytes: 4 * MiB, shortTimeout: "20ms" },
  quick: { dbBytes: 160 * MiB, liveFraction: 0.4, thresholdBytes: 32 * MiB, shortTimeout: "50ms" },
  default: { dbBytes: 1024 * MiB, liveFraction: 0.4, thresholdBytes: 200 * MiB, shortTimeout: "300ms" },
};

type Tool = "talos-etcd-defrag" | "etcdctl" | "etcd-defrag" | "etcd-defrag --move-leader";
const TOOLS: Tool[] = ["talos-etcd-defrag", "etcdctl", "etcd-defrag", "etcd-defrag --move-leader"];
const SCENARIOS = ["normal", "short-timeout"] as const;
type Scenario = (typeof SCENARIOS)[number];

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
  opsTotal?: number;
  p99OtherMs?: number;
  maxOtherMs?: number;
  keepaliveGapMs?: number;
  reclaimedBytes?: number;
  /** Reclaimed bytes as a share of the free space before (DB size minus in use): comparable across clusters. */
  reclaimedOfFreePct?: number;
  compacted?: boolean;
  startToFirstRpcMs?: number;
  peakRssMb?: number;
  /** Our tool only: where the time outside the members' defrags went, from the Talos API journal. */
  overhead?: Overhead | undefined;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
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

export interface Overhead {
  /** Process start to the first call apid received. */
  startMs: number;
  /** The first call to the first defragment: reading the cluster, gates, plan. */
  beforeFirstMs: number;
  /** Between one member's defragment and the next: health check, gates, rule, leadership. */
  betweenMs: number;
  /** After the last defragment: health check, alarms, summary, exit. */
  afterMs: number;
  /** Time the members' defragments took as etcd's callers (apid) saw them. */
  defragMs: number;
}

/** Splits our run's wall time by the Talos API journal: the defragments apid ran, and the rest. */
function overheadOf(calls: JournalEntry[], run: Spawned): Overhead | undefined {
  const defrags = calls.filter((c) => c.via === "local" && c.method === "EtcdDefragment" && c.end > 0);
  const first = calls[0];
  const head = defrags[0];
  const tail = defrags.at(-1);
  if (first === undefined || head === undefined || tail === undefined) return undefined;
  let betweenMs = 0;
  for (let i = 1; i < defrags.length; i += 1)
    betweenMs += (defrags[i]?.start ?? 0) - (defrags[i - 1]?.end ?? 0);
  return {
    startMs: first.start - run.startedAt,
    beforeFirstMs: head.start - first.start,
    betweenMs,
    afterMs: run.endedAt - tail.end,
    defragMs: defrags.reduce((sum, d) => sum + d.end - d.start, 0),
  };
}

interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
  startedAt: number;
  endedAt: number;
  peakRssKb: number;
}

/** Runs a command, sampling its peak RSS from /proc while it runs. */
function run(cmd: string, args: string[], env: Record<string, string>): Promise<Spawned> {
  return new Promise((resolveRun) => {
    const startedAt = now();
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let peakRssKb = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const sampler = setInterval(() => {
      try {
        const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1];
        if (hwm) peakRssKb = Math.max(peakRssKb, Number(hwm));
      } catch {
        // Exited between samples.
      }
    }, 20);
    // A tool that hangs must not hang the benchmark.
    const killer = setTimeout(() => child.kill("SIGKILL"), 600_000);
    child.on("close", (code) => {
      clearTimeout(killer);
      clearInterval(sampler);
      resolveRun({ code, stdout, stderr, startedAt, endedAt: now(), peakRssKb });
    });
  });
}

/** One client operation of the load generator (bench/loadgen). */
export interface Op {
  member: number;
  kind: "put" | "get" | "keepalive";
  /** ms since the epoch. */
  start: number;
  latencyMs: number;
  ok: boolean;
}

/** The Go load generator's binary: $LOADGEN_BIN, else built (once) by scripts/loadgen.sh. */
function loadgenBinary(): string {
  const given = process.env.LOADGEN_BIN;
  if (given !== undefined && given !== "") return given;
  const built = spawnSync("bash", [join(ROOT, "scripts", "loadgen.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (built.status !== 0) throw new Error("could not build the load generator (scripts/loadgen.sh)");
  return built.stdout.trim();
}

/** Starts the load on every member; stop() ends it and returns every operation it recorded. */
async function startLoad(
  bin: string,
  clientUrls: string[],
  interval: string,
): Promise<{ stop: () => Promise<Op[]> }> {
  const child = spawn(bin, ["-endpoints", clientUrls.join(","), "-interval", interval], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.on("close", resolveExit));
  await new Promise<void>((resolveStart, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("started\n")) resolveStart();
    });
    void exited.then((code) => {
      reject(new Error(`the load generator exited (${String(code)}): ${stderr.trim()}`));
    });
  });
  return {
    stop: async () => {
      child.stdin.end();
      const code = await exited;
      if (code !== 0) throw new Error(`the load generator failed (${String(code)}): ${stderr.trim()}`);
      return JSON.parse(stdout) as Op[];
    },
  };
}

async function measure(
  tool: Tool,
  scenario: Scenario,
  preset: Preset,
  etcdDefragBin: string | undefined,
  outDir: string,
  loadgen: string,
  loadInterval: string,
): Promise<Row> {
  const needsBinary = tool.startsWith("etcd-defrag");
  if (needsBinary && etcdDefragBin === undefined)
    return { tool, scenario, ran: false, note: "not run (no binary)" };
  let h: Harness | undefined;
  const dir = mkdtempSync(join(tmpdir(), "bench-"));
  try {
    h = await startHarness({ members: 3 });
    await h.etcd.fragment({ targetDbBytes: preset.dbBytes, liveFraction: preset.liveFraction });
    const before = await h.etcd.sizes();
    const compactBefore = (await h.etcd.hashKV(0)).compactRevision;
    const clientUrls = h.etcd.members.map((m) => m.clientUrl);
    const talosconfig = await h.writeTalosconfig({ roles: ["os:operator"], dir });
    // apid on a real node has been running for days, with its connections to the other nodes
    // open: one read-only `status` through the test servers first, whatever the tool.
    const warm = await run(NODE, [...TOOL, "status", "--output", "json"], {
      TALOSCONFIG: talosconfig,
      HOME: dir,
    });
    if (warm.code !== 0) throw new Error(`warm-up status failed: ${warm.stderr.trim()}`);
    const load = await startLoad(loadgen, clientUrls, loadInterval);
    // Let the load settle before the tool starts.
    await new Promise((r) => setTimeout(r, 500));
    const timeout = scenario === "short-timeout" ? preset.shortTimeout : "15m";
    const threshold = preset.thresholdBytes;
    const journalBefore = h.journal.length;
    let result: Spawned;
    if (tool === "talos-etcd-defrag") {
      result = await run(
        NODE,
        [
          ...TOOL,
          "run",
          "--output",
          "json",
          "--rule",
          `dbQuotaUsage > 0.8 || dbSizeFree > ${threshold}`,
          "--pause",
          "0s",
          "--timeout",
          timeout,
        ],
        { TALOSCONFIG: talosconfig, HOME: dir },
      );
    } else if (tool === "etcdctl") {
      result = await run(
        "etcdctl",
        [
          "--endpoints",
          clientUrls.join(","),
          "--command-timeout",
          timeout === "15m" ? "900s" : timeout,
          "defrag",
          "--cluster",
        ],
        {
          ETCDCTL_API: "3",
        },
      );
    } else {
      const args = [
        `--endpoints=${clientUrls[0] ?? ""}`,
        "--cluster",
        `--defrag-rule=dbQuotaUsage > 0.8 || dbSize - dbSizeInUse > ${threshold}`,
        `--command-timeout=${timeout === "15m" ? "900s" : timeout}`,
      ];
      if (tool === "etcd-defrag --move-leader") args.push("--move-leader");
      result = await run(etcdDefragBin ?? "", args, {});
    }
    // Let every member finish whatever a timed-out tool left running, then stop measuring.
    const settleUntil = now() + 120_000;
    while (now() < settleUntil) {
      const s = await h.etcd.sizes().catch(() => undefined);
      if (s !== undefined && h.activeDefrags().length === 0) {
        const busy = await Promise.all(
          clientUrls.map(async (u) =>
            /^etcd_disk_defrag_inflight 1$/m.test(await (await fetch(`${u}/metrics`)).text()),
          ),
        );
        if (!busy.some(Boolean)) break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const ops = await load.stop();
    const windows = h.etcd.members.flatMap((m, i) => defragWindows(m.logFile, i, result.startedAt));
    const after = await h.etcd.sizes();
    const compactAfter = (await h.etcd.hashKV(0)).compactRevision;

    const blockedAt = (member: number, t0: number, t1: number): boolean =>
      windows.some((w) => w.member === member && w.start <= t1 && w.end >= t0);
    const others = ops.filter(
      (o) => o.kind !== "keepalive" && !blockedAt(o.member, o.start, o.start + o.latencyMs),
    );
    const gap = Math.max(
      0,
      ...[0, 1, 2].map((m) => {
        const times = ops
          .filter((o) => o.kind === "keepalive" && o.member === m && o.ok)
          .map((o) => o.start + o.latencyMs)
          .sort((a, b) => a - b);
        return Math.max(0, ...times.slice(1).map((t, i) => t - (times[i] ?? t)));
      }),
    );
    const defragSumMs = windows.reduce((s, w) => s + (w.end - w.start), 0);
    const wallMs = result.endedAt - result.startedAt;
    const calls = h.journal.slice(journalBefore);
    const firstRpc = calls[0]?.start;
    const row: Row = {
      tool,
      scenario,
      ran: true,
      exitCode: result.code,
      wallMs,
      defragSumMs,
      overheadPct: ((wallMs - Math.min(wallMs, defragSumMs)) / wallMs) * 100,
      maxBlocked: maxOverlap(windows),
      failedOps: ops.filter((o) => !o.ok).length,
      opsTotal: ops.length,
      p99OtherMs: percentile(
        others.map((o) => o.latencyMs),
        99,
      ),
      maxOtherMs: Math.max(0, ...others.map((o) => o.latencyMs)),
      keepaliveGapMs: gap,
      reclaimedBytes: before.reduce((s, b, i) => s + b.dbSize - (after[i]?.dbSize ?? b.dbSize), 0),
      reclaimedOfFreePct:
        (before.reduce((s, b, i) => s + b.dbSize - (after[i]?.dbSize ?? b.dbSize), 0) /
          Math.max(
            1,
            before.reduce((s, b) => s + b.dbSize - b.dbSizeInUse, 0),
          )) *
        100,
      compacted: compactAfter !== compactBefore,
      peakRssMb: result.peakRssKb / 1024,
      ...(tool === "talos-etcd-defrag" && firstRpc !== undefined
        ? { startToFirstRpcMs: firstRpc - result.startedAt, overhead: overheadOf(calls, result) }
        : {}),
    };
    if (result.code !== 0)
      row.note = `exit ${result.code}: ${result.stderr.trim().split("\n").at(-1)?.slice(0, 160) ?? ""}`;
    const file = join(outDir, `${scenario}-${tool.replace(/[^a-z0-9]+/g, "-")}.svg`);
    writeFileSync(
      file,
      renderTimeline({
        title: `${tool} — ${scenario} (${(preset.dbBytes / MiB).toFixed(0)} MiB DB)`,
        members: h.etcd.members.map((m) => `${m.name} ${m.address}`),
        t0: result.startedAt - 500,
        t1: Math.max(result.endedAt, ...windows.map((w) => w.end)) + 500,
        windows,
        ops: ops,
      }),
    );
    return row;
  } finally {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(n: number | undefined, digits = 0): string {
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
      "Where our overhead goes (ms, from the Talos API journal):",
      "",
      "| scenario | start → 1st call | reads, gates, plan | between members | after the last | total | defrag (apid) |",
      "|---|---|---|---|---|---|---|",
    );
    for (const r of ours) {
      const o = r.overhead;
      if (o === undefined) continue;
      const total = o.startMs + o.beforeFirstMs + o.betweenMs + o.afterMs;
      lines.push(
        `| ${[r.scenario, o.startMs, o.beforeFirstMs, o.betweenMs, o.afterMs, total, o.defragMs].map((v) => (typeof v === "number" ? fmt(v) : v)).join(" | ")} |`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** "etcd 3.6.16", from the binary the harness runs. */
function etcdVersion(): string {
  const bin = process.env.ETCD_BIN ?? "etcd";
  const out = spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout;
  const version = /etcd Version: (\S+)/.exec(out)?.[1];
  return version === undefined ? bin : `etcd ${version}`;
}

export interface Target {
  target: string;
  /** Ours per scenario, with the peers' values where they help to compare. */
  measured: string;
  met: boolean | "n/a";
}

/** The issue's targets for our tool, checked against this run's rows. */
export function targets(rows: Row[], preset: string): Target[] {
  const ours = rows.filter((r) => r.tool === "talos-etcd-defrag" && r.ran);
  if (ours.length === 0) return [];
  const per = (f: (r: Row) => string): string => ours.map((r) => `${r.scenario} ${f(r)}`).join(", ");
  const peer = (tool: Tool, scenario: Scenario): Row | undefined =>
    rows.find((r) => r.tool === tool && r.scenario === scenario && r.ran);
  const overheadPeers = ours
    .map((r) =>
      (["etcdctl", "etcd-defrag", "etcd-defrag --move-leader"] as Tool[])
        .map((t) => peer(t, r.scenario))
        .filter((p): p is Row => p !== undefined && (p.maxBlocked ?? 0) <= 1)
        .map((p) => `${p.tool} ${fmt(p.overheadPct, 1)}%`)
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
                `${r.scenario} ${fmt(r.reclaimedOfFreePct, 1)}% (etcdctl ${fmt(peer("etcdctl", r.scenario)?.reclaimedOfFreePct, 1)}%)`,
            )
            .join(", "),
      met: reclaimDiffs.every((x) => x === undefined)
        ? "n/a"
        : reclaimDiffs.every((x) => x !== undefined && Math.abs(x) <= 2),
    },
    {
      target: "CLI start to first call < 300 ms",
      measured: per((r) => `${fmt(r.startToFirstRpcMs)} ms`),
      met: ours.every((r) => (r.startToFirstRpcMs ?? Infinity) < 300),
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
  const lines = ["", "Targets for talos-etcd-defrag:", "", "| target | measured | met |", "|---|---|---|"];
  for (const t of list)
    lines.push(`| ${t.target} | ${t.measured} | ${t.met === "n/a" ? "n/a" : t.met ? "yes" : "**no**"} |`);
  return lines.join("\n") + "\n";
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: "string", default: "default" },
      tools: { type: "string" },
      scenarios: { type: "string" },
      "etcd-defrag-bin": { type: "string" },
      out: { type: "string", default: join(ROOT, "bench", "results") },
      // A put and a get per member at most this often: a busy cluster's steady load, not a saturated one.
      "load-interval": { type: "string", default: "10ms" },
    },
  });
  const preset = PRESETS[values.preset];
  if (preset === undefined)
    throw new Error(`unknown preset ${values.preset} (${Object.keys(PRESETS).join(", ")})`);
  const tools = (values.tools?.split(",") ?? TOOLS) as Tool[];
  const scenarios = (values.scenarios?.split(",") ?? SCENARIOS) as Scenario[];
  const bin = values["etcd-defrag-bin"] ?? process.env.ETCD_DEFRAG_BIN;
  const etcdDefragBin = bin !== undefined && bin !== "" && existsSync(bin) ? bin : undefined;
  const outDir = values.out;
  mkdirSync(outDir, { recursive: true });
  const loadgen = loadgenBinary();
  const rows: Row[] = [];
  for (const scenario of scenarios) {
    for (const tool of tools) {
      process.stderr.write(`[bench] ${scenario}: ${tool}\n`);
      rows.push(
        await measure(tool, scenario, preset, etcdDefragBin, outDir, loadgen, values["load-interval"]),
      );
    }
  }
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}`;
  const checked = targets(rows, values.preset);
  const report = {
    date: new Date().toISOString(),
    preset: values.preset,
    presetDetails: preset,
    machine,
    etcd: etcdVersion(),
    load: { interval: values["load-interval"], generator: "bench/loadgen (Go, etcd client v3)" },
    rows,
    targets: checked,
  };
  writeFileSync(join(outDir, `results-${values.preset}.json`), JSON.stringify(report, null, 2) + "\n");
  process.stdout.write(
    `\n${values.preset} preset, ${(preset.dbBytes / MiB).toFixed(0)} MiB DB with ${preset.liveFraction * 100}% live data; ${machine}\n\n`,
  );
  process.stdout.write(table(rows));
  process.stdout.write(targetsTable(checked));
}

await main();
