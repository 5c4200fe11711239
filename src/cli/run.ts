// `talos-etcd-defrag run`: options -> checks -> the orchestrator -> summary and exit code.

import { setTimeout as delay } from "node:timers/promises";

import { configError } from "../core/errors.js";
import { DEFAULT_MAX_APPLIED_LAG } from "../core/gates.js";
import { compileRule } from "../core/rule.js";
import { parseBytes } from "../core/units.js";
import { createReporter } from "../report/reporter.js";
import { summaryJson, summaryText } from "../report/summary.js";
import { runDefrag } from "../run/run.js";
import type { MoveLeader, RunOptions, RunResult } from "../run/types.js";
import { connect, durationOption, loadConnection } from "./connect.js";
import type { CommandContext } from "./context.js";
import { EXIT } from "./exit.js";

function booleanOption(ctx: CommandContext, name: string, flag: string): boolean {
  const text = (ctx.options[name] ?? "false").toLowerCase();
  if (["true", "1", "yes"].includes(text)) return true;
  if (["false", "0", "no", ""].includes(text)) return false;
  throw configError(`${flag} "${text}" is not true or false`);
}

/** Everything about the run that can be wrong is found here, before any call to the cluster. */
export function runOptions(
  ctx: CommandContext,
  roles: readonly string[],
  nodes: readonly string[],
): RunOptions {
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
    pauseMs:
      ctx.options.pause === "0" || ctx.options.pause === "0s" ? 0 : durationOption(ctx, "pause", "--pause"),
    healthTimeoutMs: durationOption(ctx, "healthTimeout", "--health-timeout"),
    shutdownGraceMs: durationOption(ctx, "shutdownGrace", "--shutdown-grace"),
    heartbeatMs: ctx.liveProgress ? 1000 : heartbeatMs,
    pollIntervalMs: 500,
    maxAppliedLag: DEFAULT_MAX_APPLIED_LAG,
    nodes,
    roles,
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

export async function runCommand(ctx: CommandContext): Promise<number> {
  const { config, callTimeoutMs } = loadConnection(ctx);
  const options = runOptions(ctx, config.roles, config.nodes);
  const backend = connect(ctx, config, callTimeoutMs);
  const reporter = createReporter(ctx.logger, { live: ctx.liveProgress ? ctx.stderr : undefined });
  try {
    const result = await runDefrag(backend, options, {
      now: () => Date.now(),
      sleep: (ms, signal) => delay(ms, undefined, signal ? { signal } : {}),
      signal: ctx.signal,
      reporter,
    });
    if (ctx.options.output === "json") ctx.stdout.write(JSON.stringify(summaryJson(result), null, 2) + "\n");
    else ctx.stdout.write(summaryText(result));
    return exitCodeOf(result);
  } finally {
    backend.close();
  }
}
