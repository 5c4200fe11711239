// `talos-etcd-defrag run`: options -> checks -> the orchestrator -> summary and exit code.

import type { Config } from "../config/config.js";
import { DefragError, configError } from "../core/errors.js";
import { DEFAULT_MAX_APPLIED_LAG } from "../core/gates.js";
import { compileRule } from "../core/rule.js";
import { parseBytes } from "../core/units.js";
import { createReporter } from "../report/reporter.js";
import { summaryJson, summaryText } from "../report/summary.js";
import { systemClock } from "../run/clock.js";
import { runDefrag } from "../run/run.js";
import type { MoveLeader, RunOptions, RunResult } from "../run/types.js";
import type { RunMetrics } from "../report/metrics.js";
import { connect, durationOption, loadConnection } from "./connect.js";
import type { CommandContext } from "./context.js";
import { EXIT, exitCodeFor } from "./exit.js";

function booleanOption(ctx: CommandContext, name: string, flag: string): boolean {
  const text = (ctx.options[name] ?? "false").toLowerCase();
  if (["true", "1", "yes"].includes(text)) return true;
  if (["false", "0", "no", ""].includes(text)) return false;
  throw configError(`${flag} "${text}" is not true or false`);
}

/** Everything about the run that can be wrong is found here, before any call to the cluster. */
export function runOptions(ctx: CommandContext, nodes: readonly string[]): RunOptions {
  const quotaText = ctx.options.quotaBytes ?? "";
  const quotaBytes = parseBytes(quotaText);
  if (quotaBytes === undefined || quotaBytes <= 0) {
    throw configError(
      `--quota-bytes "${quotaText}" is not a size`,
      "use bytes or a unit, e.g. 2147483648, 2GiB or 4GB",
    );
  }
  const heartbeatMs = durationOption(ctx, "heartbeat", "--heartbeat");
  return {
    rule: compileRule(ctx.options.rule ?? ""),
    quotaBytes,
    timeoutMs: durationOption(ctx, "timeout", "--timeout"),
    maxWaitMs: durationOption(ctx, "maxWait", "--max-wait"),
    moveLeader: (ctx.options.moveLeader ?? "auto") as MoveLeader,
    allowDowntime: booleanOption(ctx, "allowDowntime", "--allow-downtime"),
    dryRun: booleanOption(ctx, "dryRun", "--dry-run"),
    pauseMs: durationOption(ctx, "pause", "--pause", true),
    healthTimeoutMs: durationOption(ctx, "healthTimeout", "--health-timeout"),
    shutdownGraceMs: durationOption(ctx, "shutdownGrace", "--shutdown-grace"),
    heartbeatMs: ctx.liveProgress ? 1000 : heartbeatMs,
    pollIntervalMs: 500,
    maxAppliedLag: DEFAULT_MAX_APPLIED_LAG,
    nodes,
  };
}

export function exitCodeOf(result: RunResult): number {
  switch (result.result) {
    case "success":
    case "nothing-to-do":
    case "dry-run":
      return EXIT.ok;
    case "refused":
      return EXIT.refused;
    case "failed":
      return EXIT.failure;
  }
}

interface MetricsTarget {
  pushgatewayUrl: string | undefined;
  metricsFile: string | undefined;
}

function metricsTarget(ctx: CommandContext): MetricsTarget {
  const url = ctx.options.pushgatewayUrl;
  if (url !== undefined && url !== "") {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !["http:", "https:"].includes(parsed.protocol)) {
      throw configError(
        `--pushgateway-url "${url}" is not an http(s) URL`,
        "e.g. http://pushgateway.monitoring:9091",
      );
    }
  }
  return { pushgatewayUrl: url || undefined, metricsFile: ctx.options.metricsFile || undefined };
}

/** Publishing metrics never changes the run's outcome: failures are one warning each. */
async function publish(
  ctx: CommandContext,
  target: MetricsTarget,
  cluster: string,
  m: RunMetrics,
): Promise<void> {
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
      ctx.logger.debug("metrics pushed", { pushgateway: target.pushgatewayUrl });
    } catch (err) {
      ctx.logger.warn(`could not push metrics to ${target.pushgatewayUrl}: ${(err as Error).message}`);
    }
  }
  if (target.metricsFile !== undefined) {
    try {
      await writeMetricsFile(buildRegistry(m), target.metricsFile, cluster);
    } catch (err) {
      ctx.logger.warn(`could not write metrics to ${target.metricsFile}: ${(err as Error).message}`);
    }
  }
}

const PUSH_TIMEOUT_MS = 5000;

export async function runCommand(ctx: CommandContext): Promise<number> {
  const target = metricsTarget(ctx);
  let cluster = ctx.options.clusterName || "default";
  let prepared: { config: Config; callTimeoutMs: number; options: RunOptions };
  try {
    const { config, callTimeoutMs } = loadConnection(ctx);
    cluster =
      ctx.options.clusterName || (config.contextName === "environment" ? "default" : config.contextName);
    prepared = { config, callTimeoutMs, options: runOptions(ctx, config.nodes) };
  } catch (err) {
    const e = DefragError.from(err);
    await publish(ctx, target, cluster, {
      result: "error",
      exitCode: exitCodeFor(e.kind),
      finishedAt: ctx.now(),
    });
    throw e;
  }
  const backend = connect(ctx, prepared.config, prepared.callTimeoutMs);
  const reporter = createReporter(ctx.logger, { live: ctx.liveProgress ? ctx.stderr : undefined });
  try {
    let result: RunResult;
    try {
      result = await runDefrag(backend, prepared.options, {
        clock: systemClock,
        signal: ctx.signal,
        reporter,
      });
    } catch (err) {
      const e = DefragError.from(err);
      await publish(ctx, target, cluster, {
        result: "error",
        exitCode: exitCodeFor(e.kind),
        finishedAt: ctx.now(),
      });
      throw e;
    }
    if (ctx.options.output === "json") ctx.stdout.write(JSON.stringify(summaryJson(result), null, 2) + "\n");
    else ctx.stdout.write(summaryText(result));
    const exitCode = exitCodeOf(result);
    await publish(ctx, target, cluster, {
      result: result.result,
      exitCode,
      finishedAt: ctx.now(),
      run: result,
    });
    return exitCode;
  } finally {
    backend.close();
  }
}
