// Not during an election: a defragment blocks a member, and blocking one while the cluster elects a
// leader makes it worse (users of a peer's automatic defragment saw elections and a down API server
// under load). After a leader change the run knows of (between its readings, or in a member's etcd
// log), it waits until the cluster has been stable for --election-settle, then reads again; if
// elections go on for --max-wait, it refuses (gate election).

import { DefragError } from "../core/errors.js";
import type { RunStop } from "../core/result.js";
import { formatDuration } from "../core/units.js";
import type { RunContext } from "./types.js";

/**
 * Undefined when the last election is at least --election-settle ago (or none is known), after
 * waiting for that when needed; else the stop. Each look is on a fresh view (live.ts's rule), so an
 * election since the last reading is seen between readings too.
 */
export async function untilSettled(ctx: RunContext, before: string): Promise<RunStop | undefined> {
  const { clock, reporter, opts, live } = ctx;
  const settle = opts.electionSettleMs;
  if (settle <= 0) return undefined;
  const started = clock.now();
  let told = false;
  for (;;) {
    await live.view();
    const last = live.lastElection();
    const since = last === undefined ? Number.POSITIVE_INFINITY : clock.now() - last.at;
    if (since >= settle) {
      if (told) reporter.info(`the cluster has been stable for ${formatDuration(settle)}; going on`);
      return undefined;
    }
    if (last === undefined) return undefined;
    const where =
      last.seen === "log" ? `in the etcd log of ${last.node ?? "a member"}` : "between the run's readings";
    if (opts.dryRun) {
      reporter.warn(
        `a leader election ${formatDuration(Math.max(0, since))} ago (${where}): a real run would wait until the cluster has been stable for ${formatDuration(settle)} before ${before}`,
      );
      return undefined;
    }
    if (clock.now() - started >= opts.maxWaitMs) {
      const error = new DefragError(
        "refused",
        `the cluster kept electing leaders for ${formatDuration(opts.maxWaitMs)} (the last ${formatDuration(Math.max(0, since))} ago, ${where}); not starting ${before} until it is stable`,
        {
          hint: "find why leaders keep changing (etcd's logs, disk and network latency) and run again when the cluster is stable, or raise --max-wait",
        },
      );
      reporter.error(error.describe());
      return { kind: "refused", error, refusals: [{ gate: "election", message: error.message }] };
    }
    if (!told) {
      told = true;
      reporter.warn(
        `a leader election ${formatDuration(Math.max(0, since))} ago (${where}): waiting until the cluster has been stable for ${formatDuration(settle)} before ${before}`,
      );
    }
    await clock
      .sleep(Math.min(settle - since, opts.maxWaitMs - (clock.now() - started)) + 1, ctx.signal)
      .catch(() => undefined);
    if (ctx.signal.aborted)
      return {
        kind: "failed",
        error: new DefragError("aborted", `stopped while waiting for the cluster to settle before ${before}`),
      };
  }
}
