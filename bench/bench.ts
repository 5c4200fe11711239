// `npm run bench`: disruption and correctness of our tool side by side with
// `etcdctl defrag --cluster` and ahrtr/etcd-defrag, on identically fragmented
// 3-member clusters under client load. Prints a markdown table; writes the raw
// results (JSON) and one SVG timeline per scenario and tool to bench/results/.

import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

import { parseBytes } from "../src/core/units.js";

import { startHarness, type Harness } from "../test/harness/harness.js";
import { now, type JournalEntry } from "../test/harness/journal.js";
import { defragWindows, type DefragWindow } from "./etcd-log.js";
import { loadgenBinary, startLoad } from "./load.js";
import {
  SCENARIOS,
  TOOLS,
  isOurs,
  maxOverlap,
  table,
  targets,
  targetsTable,
  type Overhead,
  type Row,
  type Scenario,
  type Tool,
} from "./report.js";
import { renderTimeline } from "./svg.js";

const ROOT = resolve(import.meta.dirname, "..");
const MiB = 1024 ** 2;

/**
 * The image's Node (scripts/node24.sh installs its major version into .cache/node), or this one with
 * BENCH_NODE=current; BENCH_NODE=/path/to/node names another.
 */
function imageNode(): string {
  const asked = process.env.BENCH_NODE;
  if (asked === "current") return process.execPath;
  if (asked !== undefined && asked !== "") return asked;
  const r = spawnSync("bash", [join(ROOT, "scripts", "node24.sh")], { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`cannot install the image's Node (scripts/node24.sh): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Our tool as the container image runs it: the Dockerfile's ENTRYPOINT (node, its flags, the bundle). */
function imageCommand(): string[] {
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, "Dockerfile"), "utf8"))?.[1];
  const argv = entrypoint === undefined ? [] : (JSON.parse(entrypoint) as string[]);
  const flags = argv.slice(1, -1).filter((a) => a.startsWith("--"));
  return [imageNode(), ...flags, join(ROOT, "dist", "bundle", "talos-etcd-defrag.mjs")];
}
const [NODE = process.execPath, ...TOOL] = imageCommand();

/**
 * The image's compile cache (its runtime stage runs `warm-up` once with NODE_COMPILE_CACHE set), made
 * here the same way in a folder of the bench's own, so that every run reads it as in the image.
 */
const IMAGE_ENV: Record<string, string> = (() => {
  const cache = mkdtempSync(join(tmpdir(), "bench-compile-cache-"));
  const env = { NODE_COMPILE_CACHE: cache };
  const r = spawnSync(NODE, [...TOOL, "warm-up"], { env: { PATH: process.env.PATH ?? "", ...env } });
  if (r.status !== 0) throw new Error("the compile-cache warm-up (the image's RUN ... warm-up) failed");
  return env;
})();

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

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
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
    source: "journal",
    startMs: first.start - run.startedAt,
    beforeFirstMs: head.start - first.start,
    betweenMs,
    afterMs: run.endedAt - tail.end,
    defragMs: defrags.reduce((sum, d) => sum + d.end - d.start, 0),
  };
}

/**
 * The same split for --backend etcd, which no apid sees: the first connection to etcd, then each
 * member's defragment as etcd's own log has it (from before it takes its locks to its end).
 */
function etcdOverheadOf(windows: DefragWindow[], run: Spawned): Overhead | undefined {
  const defrags = [...windows].sort((a, b) => a.start - b.start);
  const head = defrags[0];
  const tail = defrags.at(-1);
  if (run.firstConnectAt === undefined || head === undefined || tail === undefined) return undefined;
  let betweenMs = 0;
  for (let i = 1; i < defrags.length; i += 1)
    betweenMs += (defrags[i]?.start ?? 0) - (defrags[i - 1]?.end ?? 0);
  return {
    source: "etcd log",
    startMs: run.firstConnectAt - run.startedAt,
    beforeFirstMs: head.start - run.firstConnectAt,
    betweenMs,
    afterMs: run.endedAt - tail.end,
    defragMs: defrags.reduce((sum, d) => sum + d.end - d.start, 0),
  };
}

/** Our tool's measured command: the same rule as the peers, no pause between members. */
function ourRunArgs(preset: Preset, timeout: string): string[] {
  return [
    "run",
    "--output",
    "json",
    "--rule",
    `dbQuotaUsage > 0.8 || dbSizeFree > ${preset.thresholdBytes}`,
    "--pause",
    "0s",
    // The bench defragments the same cluster once per iteration, right after starting it.
    "--min-interval",
    "0s",
    "--election-settle",
    "0s",
    "--timeout",
    timeout,
  ];
}

/**
 * Our tool's command line for a row: through the Talos API (the talosconfig in env), or with
 * --backend etcd at the members' client URLs that etcdctl and etcd-defrag are given (plain http on
 * loopback, as the harness runs etcd: no TLS options).
 */
function ourArgs(tool: Tool, preset: Preset, timeout: string, clientUrls: string[]): string[] {
  const args = [...TOOL, ...ourRunArgs(preset, timeout)];
  if (tool === "talos-etcd-defrag --backend etcd")
    args.push("--backend", "etcd", "--etcd-endpoints", clientUrls.join(","));
  return args;
}

/**
 * Start-up on the idle machine (the target's condition: the cluster up, nothing else running): our
 * measured command as a dry run (it reads the cluster and changes nothing), the median of seven.
 * The first call: the Talos API journal's, or with --backend etcd the first connection to etcd.
 */
async function idleStartUps(
  h: Harness,
  tool: Tool,
  env: Record<string, string>,
  preset: Preset,
  clientUrls: string[],
): Promise<number[]> {
  const starts: number[] = [];
  const viaEtcd = tool === "talos-etcd-defrag --backend etcd";
  for (let i = 0; i < 7; i += 1) {
    const before = h.journal.length;
    const dry = await run(
      NODE,
      [...ourArgs(tool, preset, "15m", clientUrls), "--dry-run"],
      env,
      viaEtcd ? clientUrls : undefined,
    );
    const first = viaEtcd ? dry.firstConnectAt : h.journal[before]?.start;
    if (dry.code !== 0 || first === undefined)
      throw new Error(`the idle dry run failed: ${dry.stderr.trim()}`);
    starts.push(first - dry.startedAt);
  }
  return starts;
}

/** "http://127.1.2.11:2379" as /proc/net/tcp writes a remote IPv4 address: "0B02017F:094B". */
function procTcpAddress(clientUrl: string): string {
  const url = new URL(clientUrl);
  const ip = url.hostname
    .split(".")
    .map((o) => Number(o).toString(16).toUpperCase().padStart(2, "0"))
    .reverse()
    .join("");
  return `${ip}:${Number(url.port).toString(16).toUpperCase().padStart(4, "0")}`;
}

/** The inodes of the TCP sockets connected or connecting to one of these remote addresses now. */
function socketsTo(remotes: Set<string>): string[] {
  const inodes: string[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // rem_address, st (01 ESTABLISHED, 02 SYN_SENT), inode.
    if (remotes.has(f[2] ?? "") && (f[3] === "01" || f[3] === "02") && f[9] !== "0") inodes.push(f[9] ?? "");
  }
  return inodes;
}

function ownsSocket(pid: number, inode: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
  startedAt: number;
  endedAt: number;
  peakRssKb: number;
  /** With `connectsTo`: when the process was first seen connected to one of those URLs. */
  firstConnectAt?: number;
}

/**
 * Runs a command, sampling its peak RSS from /proc while it runs. With `connectsTo` (etcd client
 * URLs), also when it first connects to one of them: /proc/net/tcp every 2 ms until a new socket
 * there is the child's (so at most about 2 ms late; it sends its first call on it at once).
 */
function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  connectsTo?: string[],
): Promise<Spawned> {
  return new Promise((resolveRun) => {
    const remotes = new Set((connectsTo ?? []).map(procTcpAddress));
    // Sockets there before the child (the load generator's, the harness's) are not its.
    const seen = new Set(connectsTo === undefined ? [] : socketsTo(remotes));
    let firstConnectAt: number | undefined;
    const startedAt = now();
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? "", ...IMAGE_ENV, ...env },
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
    const watcher =
      connectsTo === undefined
        ? undefined
        : setInterval(() => {
            for (const inode of socketsTo(remotes)) {
              if (seen.has(inode)) continue;
              seen.add(inode);
              if (child.pid !== undefined && ownsSocket(child.pid, inode)) {
                firstConnectAt = now();
                clearInterval(watcher);
                return;
              }
            }
          }, 2);
    // A tool that hangs must not hang the benchmark.
    const killer = setTimeout(() => child.kill("SIGKILL"), 600_000);
    child.on("close", (code) => {
      clearTimeout(killer);
      clearInterval(sampler);
      clearInterval(watcher);
      resolveRun({
        code,
        stdout,
        stderr,
        startedAt,
        endedAt: now(),
        peakRssKb,
        ...(firstConnectAt !== undefined ? { firstConnectAt } : {}),
      });
    });
  });
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
    const talosconfig = await h.writeTalosconfig({ roles: ["os:operator"], dir });
    const env = { TALOSCONFIG: talosconfig, HOME: dir };
    // apid on a real node has been running for days, with its connections to the other nodes
    // open: one read-only `status` through the test servers first, whatever the tool (the
    // connections stay open while the cluster is filled).
    const warm = await run(NODE, [...TOOL, "status", "--output", "json"], env);
    if (warm.code !== 0) throw new Error(`warm-up status failed: ${warm.stderr.trim()}`);
    const clientUrls = h.etcd.members.map((m) => m.clientUrl);
    // --backend etcd: no talosconfig, only the endpoints etcdctl and etcd-defrag are given.
    const ourEnv = tool === "talos-etcd-defrag --backend etcd" ? { HOME: dir } : env;
    const idleStarts = isOurs(tool) ? await idleStartUps(h, tool, ourEnv, preset, clientUrls) : [];
    await h.etcd.fragment({ targetDbBytes: preset.dbBytes, liveFraction: preset.liveFraction });
    const before = await h.etcd.sizes();
    const compactBefore = (await h.etcd.hashKV(0)).compactRevision;
    const load = await startLoad(loadgen, clientUrls, loadInterval);
    // Let the load settle before the tool starts.
    await new Promise((r) => setTimeout(r, 500));
    const timeout = scenario === "short-timeout" ? preset.shortTimeout : "15m";
    const threshold = preset.thresholdBytes;
    const journalBefore = h.journal.length;
    let result: Spawned;
    if (isOurs(tool)) {
      // BENCH_PROFILE=DIR: a CPU profile of our measured run, for finding where its time goes.
      const profile = process.env.BENCH_PROFILE;
      const flags = profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`, "--cpu-prof-interval=250"] : [];
      result = await run(
        NODE,
        [...flags, ...ourArgs(tool, preset, timeout, clientUrls)],
        ourEnv,
        tool === "talos-etcd-defrag --backend etcd" ? clientUrls : undefined,
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
    const reclaimed = before.reduce((s, b, i) => s + b.dbSize - (after[i]?.dbSize ?? b.dbSize), 0);
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
      failedOpErrors: ops
        .filter((o) => !o.ok)
        .reduce<Record<string, number>>((n, o) => {
          const key = `${o.kind}: ${o.error ?? "?"}`;
          n[key] = (n[key] ?? 0) + 1;
          return n;
        }, {}),
      opsTotal: ops.length,
      p99OtherMs: percentile(
        others.map((o) => o.latencyMs),
        99,
      ),
      maxOtherMs: Math.max(0, ...others.map((o) => o.latencyMs)),
      keepaliveGapMs: gap,
      reclaimedBytes: reclaimed,
      reclaimedOfFreePct:
        (reclaimed /
          Math.max(
            1,
            before.reduce((s, b) => s + b.dbSize - b.dbSizeInUse, 0),
          )) *
        100,
      compacted: compactAfter !== compactBefore,
      peakRssMb: result.peakRssKb / 1024,
      ...(tool === "talos-etcd-defrag" && firstRpc !== undefined
        ? {
            startToFirstRpcMs: firstRpc - result.startedAt,
            idleStartMs: percentile(idleStarts, 50),
            overhead: overheadOf(calls, result),
          }
        : {}),
      ...(tool === "talos-etcd-defrag --backend etcd" && result.firstConnectAt !== undefined
        ? {
            startToFirstRpcMs: result.firstConnectAt - result.startedAt,
            idleStartMs: percentile(idleStarts, 50),
            overhead: etcdOverheadOf(windows, result),
          }
        : {}),
    };
    if (tool === "talos-etcd-defrag" && process.env.BENCH_TRACE === "1") {
      // Every Talos API call of our run, relative to the spawn: where the overhead goes, call by call.
      for (const c of calls)
        process.stderr.write(
          `[trace] ${(c.start - result.startedAt).toFixed(1).padStart(8)} +${((c.end || now()) - c.start).toFixed(1).padStart(7)} ${c.via.padEnd(9)} ${c.server} -> ${c.target ?? "-"} ${c.method}\n`,
        );
      process.stderr.write(`[trace] exit at ${(result.endedAt - result.startedAt).toFixed(1)}\n`);
    }
    if (process.env.BENCH_TRACE === "1") {
      // Every failed or slow (over 1 s) client operation and every defrag window, relative to the spawn.
      const at = (t: number): string => (t - result.startedAt).toFixed(1).padStart(8);
      for (const o of ops.filter((x) => !x.ok || x.latencyMs > 1000))
        process.stderr.write(
          `[trace] ${at(o.start)} +${o.latencyMs.toFixed(1).padStart(7)} member ${o.member} ${o.kind} ${o.ok ? "slow" : `failed: ${o.error ?? "?"}`}\n`,
        );
      for (const w of windows)
        process.stderr.write(
          `[trace] ${at(w.start)} +${(w.end - w.start).toFixed(1).padStart(7)} member ${w.member} defragmenting (etcd's log)\n`,
        );
      if (result.stderr !== "" && isOurs(tool)) process.stderr.write(result.stderr.replace(/^/gm, "[tool] "));
    }
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
        ops,
      }),
    );
    return row;
  } finally {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function nodeVersion(): string {
  const r = spawnSync(NODE, ["--version"], { encoding: "utf8" });
  return `Node ${r.stdout.trim()}`;
}

function etcdVersion(): string {
  const bin = process.env.ETCD_BIN ?? "etcd";
  const out = spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout;
  const version = /etcd Version: (\S+)/.exec(out)?.[1];
  return version === undefined ? bin : `etcd ${version}`;
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
      // Overrides of the preset (the run is then labelled "custom").
      "db-size": { type: "string" },
      "live-fraction": { type: "string" },
      "short-timeout": { type: "string" },
    },
  });
  const base = PRESETS[values.preset];
  if (base === undefined)
    throw new Error(`unknown preset ${values.preset} (${Object.keys(PRESETS).join(", ")})`);
  const preset = { ...base };
  let label = values.preset;
  if (values["db-size"] !== undefined) {
    const bytes = parseBytes(values["db-size"]);
    if (bytes === undefined || bytes < 4 * MiB)
      throw new Error(`--db-size ${values["db-size"]}: e.g. 512MiB`);
    // The same threshold relative to the size as the presets: a fifth of the database free.
    Object.assign(preset, { dbBytes: bytes, thresholdBytes: Math.round(bytes / 5) });
    label = "custom";
  }
  if (values["live-fraction"] !== undefined) {
    const live = Number(values["live-fraction"]);
    if (!(live > 0 && live < 1))
      throw new Error(`--live-fraction ${values["live-fraction"]}: between 0 and 1`);
    preset.liveFraction = live;
    label = "custom";
  }
  if (values["short-timeout"] !== undefined) {
    preset.shortTimeout = values["short-timeout"];
    label = "custom";
  }
  const pick = <T extends string>(list: string | undefined, known: readonly T[], what: string): T[] => {
    const names = list?.split(",") ?? [...known];
    const unknown = names.filter((n) => !(known as readonly string[]).includes(n));
    if (unknown.length > 0) throw new Error(`unknown ${what}: ${unknown.join(", ")} (${known.join(", ")})`);
    return names as T[];
  };
  const tools = pick(values.tools, TOOLS, "tool");
  const scenarios = pick(values.scenarios, SCENARIOS, "scenario");
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
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version} (our tool: ${nodeVersion()}, compile cache as in the image)`;
  const checked = targets(rows, label);
  const report = {
    date: new Date().toISOString(),
    preset: label,
    presetDetails: preset,
    machine,
    etcd: etcdVersion(),
    load: { interval: values["load-interval"], generator: "bench/loadgen (Go, etcd client v3)" },
    rows,
    targets: checked,
  };
  writeFileSync(join(outDir, `results-${label}.json`), JSON.stringify(report, null, 2) + "\n");
  process.stdout.write(
    `\n${label} preset, ${(preset.dbBytes / MiB).toFixed(0)} MiB DB with ${preset.liveFraction * 100}% live data; ${machine}\n\n`,
  );
  process.stdout.write(table(rows));
  process.stdout.write(targetsTable(checked));
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
}
