// Never defragment into an upgrade or a reboot: before the first member and before each one, every
// node of the cluster must be up and serving (core/gates.ts checkLifecycle). Rolling upgrades reboot
// control-plane nodes one after another; a member blocked by a defragment while another node reboots
// is two members out at once, and a 3-member cluster loses quorum. While a node is not, the run waits
// (up to --max-wait, told as it goes) and starts nothing; then it refuses. A platform that does not
// report its nodes' lifecycle is said once, and the run goes on without it.

import { DefragError } from "../core/errors.js";
import { checkLifecycle, type GateFailure } from "../core/gates.js";
import type { RunStop } from "../core/result.js";
import { formatDuration } from "../core/units.js";
import type { RunContext } from "./types.js";
import { FIRST_POLL_MS, pollUntil } from "./wait.js";

/** How often a node that is not up and serving is read again. */
const LIFECYCLE_POLL_MS = 1000;

/** Undefined when every node is up and serving (or does not say), else the stop: a refusal, gate lifecycle. */
export async function untilSteady(ctx: RunContext, before: string): Promise<RunStop | undefined> {
  const { clock, reporter, opts, live, backend } = ctx;
  const read = async (): Promise<GateFailure[]> => {
    const readings = await live.lifecycles();
    for (const r of readings) {
      if (!("unsupported" in r)) continue;
      // A reason that names no node holds for every node (etcd's API): said once for all.
      const each = r.unsupported.includes(r.node);
      // Per node it is a surprise (warn); for every node it is what the platform is (info, once).
      if (live.firstTime(`lifecycle ${each ? r.node : r.unsupported}`))
        reporter[each ? "warn" : "info"](
          `${r.unsupported}: upgrades and reboots of ${each ? r.node : "the members' machines"} cannot be seen, and a member may be defragmented during one`,
          each ? { node: r.node } : {},
        );
    }
    return checkLifecycle(readings);
  };
  let failures = await read();
  if (failures.length === 0) return undefined;
  const what = (): string => failures.map((f) => f.message).join("; ");
  if (opts.dryRun) {
    reporter.warn(`${what()}: a real run would wait for it before ${before}`);
    return undefined;
  }
  const started = clock.now();
  reporter.warn(
    `${what()}; waiting up to ${formatDuration(opts.maxWaitMs)} before ${before}, and no member is started meanwhile`,
    { nodes: failures.map((f) => f.node) },
  );
  const stopHeartbeat = clock.every(opts.heartbeatMs, () => {
    reporter.info(`still waiting: ${what()} (waited ${formatDuration(clock.now() - started)})`, {
      nodes: failures.map((f) => f.node),
    });
  });
  try {
    await pollUntil(
      clock,
      { timeoutMs: opts.maxWaitMs, intervalMs: LIFECYCLE_POLL_MS, firstIntervalMs: FIRST_POLL_MS },
      async () => {
        failures = await read();
        return failures.length === 0 ? true : undefined;
      },
    );
  } finally {
    stopHeartbeat();
  }
  if (failures.length === 0) {
    reporter.info(
      `every node is up and serving again, after ${formatDuration(clock.now() - started)} of waiting`,
    );
    return undefined;
  }
  const node = failures[0]?.node ?? "";
  const error = new DefragError(
    "refused",
    `${what()} after waiting ${formatDuration(opts.maxWaitMs)}; not starting ${before} while it is`,
    {
      node,
      hint: `let the upgrade or reboot finish (${backend.words.inspectLifecycle(node)}) and run again, or raise --max-wait`,
    },
  );
  reporter.error(error.describe());
  return { kind: "refused", error, refusals: failures };
}
