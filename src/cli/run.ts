// `talos-etcd-defrag run`: options -> checks -> the orchestrator -> summary and exit code.

import { configError, DefragError } from "../core/errors.js";
import { DEFAULT_MAX_APPLIED_LAG } from "../core/gates.js";
import type { Logger } from "../report/logger.js";
import { createReporter } from "../report/reporter.js";
import { summaryJson, summaryText } from "../report/summary.js";
import { systemClock } from "../run/clock.js";
import { checkSnapshotDir, fileSnapshotStore } from "../snapshot/file-store.js";
import { runDefrag } from "../run/run.js";
import type { HeldGuard } from "../core/ports.js";
import type { RunResult } from "../core/result.js";
import type { RunOptions } from "../run/types.js";
import type { RunMetrics } from "../report/metrics.js";
import { connect, loadConnection, type Connection } from "./connect.js";
import type { CommandContext } from "./context.js";
import { exitCodeFor, exitCodeForRun } from "./exit.js";
import { acquireGuard, guardFor, releaseGuard } from "./lease.js";
import type { RunCliOptions } from "./options.js";

/** The options were checked when parsed; here they meet what the configuration told. */
export function runOptions(ctx: CommandContext<RunCliOptions>, nodes: readonly string[]): RunOptions {
  const o = ctx.options;
  return {
    rule: o.rule,
    ...(o.quotaBytes !== undefined ? { quotaBytes: o.quotaBytes } : {}),
    nospaceDisarmBelow: o.nospaceDisarmBelow,
    timeoutMs: o.timeoutMs,
    maxWaitMs: o.maxWaitMs,
    minIntervalMs: o.minIntervalMs,
    electionSettleMs: o.electionSettleMs,
    moveLeader: o.moveLeader,
    allowDowntime: o.allowDowntime,
    dryRun: o.dryRun,
    pauseMs: o.pauseMs,
    healthTimeoutMs: o.healthTimeoutMs,
    shutdownGraceMs: o.shutdownGraceMs,
    heartbeatMs: ctx.liveProgress ? 1000 : o.heartbeatMs,
    pollIntervalMs: 500,
    maxAppliedLag: DEFAULT_MAX_APPLIED_LAG,
    affectedEtcd: o.affectedEtcd,
    compact: o.compact,
    nodes,
  };
}

type MetricsTarget = Pick<Partial<RunCliOptions>, "pushgatewayUrl" | "metricsFile">;

/** Publishing metrics never changes the run's outcome: failures are one warning each. */
async function publish(logger: Logger, target: MetricsTarget, cluster: string, m: RunMetrics): Promise<void> {
  if (target.pushgatewayUrl === undefined && target.metricsFile === undefined) return;
  // Loaded only when wanted: the Prometheus client is a noticeable part of the start-up time.
  const { buildRegistry, pushMetrics, writeMetricsFile } = await import("../report/metrics.js");
  if (target.pushgatewayUrl !== undefined) {
    try {
      await pushMetrics(buildRegistry(m), {
        url: target.pushgatewayUrl,
        cluster,
        timeoutMs: PUSH_TIMEOUT_MS,
      });
      logger.debug("metrics pushed", { pushgateway: target.pushgatewayUrl });
    } catch (err) {
      logger.warn(`could not push metrics to ${target.pushgatewayUrl}: ${(err as Error).message}`);
    }
  }
  if (target.metricsFile !== undefined) {
    try {
      await writeMetricsFile(buildRegistry(m), target.metricsFile, cluster);
    } catch (err) {
      logger.warn(`could not write metrics to ${target.metricsFile}: ${(err as Error).message}`);
    }
  }
}

const PUSH_TIMEOUT_MS = 5000;

/** Options that did not parse still make a failed run whose metrics are published, as far as they can be. */
export async function runBadOptions(
  ctx: CommandContext<Partial<RunCliOptions>>,
  err: DefragError,
): Promise<void> {
  await publish(ctx.logger, ctx.options, ctx.options.clusterName ?? "default", {
    result: "error",
    exitCode: exitCodeFor(err.kind),
    finishedAt: ctx.now(),
  });
}

/**
 * The run command. Whatever happens — bad configuration, the guard held elsewhere, a refusal, a
 * bug — the metrics are published exactly once, in the `finally`, from what is known by then.
 */
export async function runCommand(ctx: CommandContext<RunCliOptions>): Promise<number> {
  let cluster = ctx.options.clusterName ?? "default";
  let metrics: RunMetrics | undefined;
  try {
    if (ctx.options.compact && ctx.options.backend !== "etcd")
      throw configError(
        "--compact needs --backend etcd: the Talos API cannot compact etcd",
        "drop --compact (Kubernetes compacts etcd every 5 minutes itself), or reach etcd directly with --backend etcd",
      );
    const connection = loadConnection(ctx);
    cluster = ctx.options.clusterName ?? connection.name;
    const options = runOptions(ctx, connection.nodes);
    // A snapshot directory that cannot be written is found now, before any call (a dry run too).
    if (ctx.options.snapshotDir !== undefined) checkSnapshotDir(ctx.options.snapshotDir);
    // A dry run changes nothing, so it does not need (or wait for) the guard against concurrent runs.
    const guard = options.dryRun
      ? undefined
      : await guardFor(ctx, systemClock, () => memberHosts(ctx, connection));
    const result = await guarded(ctx, guard, (signal) => runOn(ctx, connection, options, signal));
    if (ctx.options.output === "json") ctx.stdout.write(JSON.stringify(summaryJson(result), null, 2) + "\n");
    else ctx.stdout.write(summaryText(result));
    const exitCode = exitCodeForRun(result.result);
    metrics = { result: result.result, exitCode, finishedAt: ctx.now(), run: result };
    return exitCode;
  } catch (err) {
    const e = DefragError.from(err);
    metrics = { result: "error", exitCode: exitCodeFor(e.kind), finishedAt: ctx.now() };
    throw e;
  } finally {
    if (metrics !== undefined) await publish(ctx.logger, ctx.options, cluster, metrics);
  }
}

/**
 * Runs `run` holding the guard against concurrent runs, when there is one: another run holding it
 * means this one touches nothing (a refusal); losing it aborts the run's signal.
 */
async function guarded(
  ctx: CommandContext<RunCliOptions>,
  guard: Awaited<ReturnType<typeof guardFor>>,
  run: (signal: AbortSignal) => Promise<RunResult>,
): Promise<RunResult> {
  if (guard === undefined) return run(ctx.signal);
  const startedAt = ctx.now();
  let held: HeldGuard;
  try {
    held = await acquireGuard(ctx, guard);
  } catch (err) {
    const e = DefragError.from(err);
    if (e.kind !== "refused") throw e;
    ctx.logger.error(`refused: ${e.describe()}`, { kind: e.kind });
    return refusedByGuard(e, startedAt, ctx.now());
  }
  try {
    const result = await run(AbortSignal.any([ctx.signal, held.lost]));
    if (held.lost.aborted) ctx.logger.error(DefragError.from(held.lost.reason).describe());
    return result;
  } finally {
    await releaseGuard(ctx, guard.what, held);
  }
}

/** The etcd members' hosts, read once for --lease auto's same-cluster check. */
async function memberHosts(ctx: CommandContext<RunCliOptions>, connection: Connection): Promise<string[]> {
  const backend = connect(ctx, connection);
  try {
    return (await backend.members(ctx.signal)).flatMap((m) => (m.node === undefined ? [] : [hostOf(m.node)]));
  } finally {
    backend.close();
  }
}

/** The orchestrator on a backend chosen by the configuration (src/cli/connect.ts). */
async function runOn(
  ctx: CommandContext<RunCliOptions>,
  connection: Connection,
  options: RunOptions,
  signal: AbortSignal,
): Promise<RunResult> {
  const backend = connect(ctx, connection);
  try {
    return await runDefrag(backend, options, {
      clock: systemClock,
      // Stop requested, or the guard lost: start nothing new.
      signal,
      reporter: createReporter(ctx.logger, { live: ctx.liveProgress ? ctx.stderr : undefined }),
      snapshots:
        ctx.options.snapshotDir === undefined || options.dryRun
          ? undefined
          : fileSnapshotStore(ctx.options.snapshotDir, { keep: ctx.options.snapshotKeep }),
    });
  } finally {
    backend.close();
  }
}

/** Another run holds the guard: refused before anything was read or touched. */
function refusedByGuard(error: DefragError, startedAt: Date, now: Date): RunResult {
  return {
    result: "refused",
    members: [],
    reclaimedBytes: 0,
    durationMs: now.getTime() - startedAt.getTime(),
    alarmsDisarmed: [],
    alarmsRaised: [],
    refusals: [{ gate: "another-run", message: error.describe() }],
    error,
    startedAt,
  };
}

/** A member's host: its node is an address on Talos, a client URL on etcd. */
function hostOf(node: string): string {
  if (!node.includes("://")) return node;
  return new URL(node).hostname.replace(/^\[|\]$/g, "");
}
