// The run's options and a reporter that records, for the tests that drive runDefrag on the simulation.

import { compileRule } from "../../src/core/rule.js";
import type { RunReporter } from "../../src/core/ports.js";
import type { RunOptions } from "../../src/run/types.js";

/** Three nodes, a rule that is always true, no leader moves, a 1 s pause; `over` changes any of it. */
export function simOptions(over: Partial<RunOptions> = {}): RunOptions {
  return {
    rule: compileRule("true"),
    nospaceDisarmBelow: 0.8,
    timeoutMs: 60_000,
    moveLeader: "never",
    allowDowntime: false,
    dryRun: false,
    pauseMs: 1000,
    nodes: ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    maxAppliedLag: 1000,
    affectedEtcd: "caught-up",
    healthTimeoutMs: 60_000,
    maxWaitMs: 600_000,
    minIntervalMs: 0,
    electionSettleMs: 0,
    shutdownGraceMs: 25_000,
    pollIntervalMs: 500,
    heartbeatMs: 30_000,
    compact: false,
    ...over,
  };
}

/** Every line the run reports, warnings and errors prefixed when `levels` is set; heartbeats as "heartbeat NODE MS". */
export function recordingReporter(lines: string[], opts: { levels?: boolean } = {}): RunReporter {
  const at =
    (level: string) =>
    (m: string): void => {
      lines.push(opts.levels === true && level !== "" ? `${level} ${m}` : m);
    };
  return {
    info: at(""),
    warn: at("WARN"),
    error: at("ERROR"),
    heartbeat: (node, elapsedMs) => {
      lines.push(`heartbeat ${node} ${elapsedMs}`);
    },
    heartbeatDone: () => undefined,
  };
}
