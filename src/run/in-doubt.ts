// The defragment call, and what happens when it ends without success: etcd keeps
// defragmenting regardless, so the member is "in doubt" until there is positive
// evidence that it finished. No other member is touched meanwhile.

import { DefragError } from "../core/errors.js";
import { freeBytes, type MemberStatus } from "../core/model.js";
import type { Sizes } from "../core/result.js";
import { formatBytes, formatDuration } from "../core/units.js";
import type { RunContext } from "./types.js";
import { pollUntil } from "./wait.js";

const MiB = 1024 ** 2;

/** Calls the defragment; on a stop request it waits up to the grace period for the call, then gives up on it. */
export async function callDefragment(ctx: RunContext, node: string): Promise<{ error?: DefragError }> {
  const { clock, reporter, opts, signal } = ctx;
  const call = new AbortController();
  let cancelGrace = (): void => undefined;
  const onAbort = (): void => {
    reporter.warn(
      `stop requested: waiting up to ${formatDuration(opts.shutdownGraceMs)} for ${node} to finish its defragment`,
    );
    cancelGrace = clock.after(opts.shutdownGraceMs, () => {
      call.abort(
        new DefragError("aborted", "gave up waiting for the defragment after a stop request", { node }),
      );
    });
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  const started = clock.now();
  const stopHeartbeat = clock.every(opts.heartbeatMs, () => {
    reporter.heartbeat(node, clock.now() - started);
  });
  try {
    await ctx.backend.defragment(node, { timeoutMs: opts.timeoutMs, signal: call.signal });
    return {};
  } catch (err) {
    return { error: DefragError.from(err) };
  } finally {
    stopHeartbeat();
    cancelGrace();
    reporter.heartbeatDone();
    signal.removeEventListener("abort", onAbort);
  }
}

/** How long to wait for proof: --max-wait, or only the grace period once a stop was requested. */
export function proofBudgetMs(ctx: Pick<RunContext, "opts" | "signal">): number {
  const { maxWaitMs, shutdownGraceMs } = ctx.opts;
  return ctx.signal.aborted ? Math.min(maxWaitMs, shutdownGraceMs) : maxWaitMs;
}

/**
 * Positive evidence that a member's defragment finished after its call did not
 * succeed: etcd logged its end (its feed shows it, no round trip), its DB shrank as planned, or
 * a second defragment call returned. etcd runs
 * one defragment at a time per member, so the second returns only after the first
 * ended (and does the work itself if the first never started, e.g. when the deadline
 * passed before the request reached etcd). The second call blocks the member again,
 * so it is made only when little was to be reclaimed or the DB has not shrunk in a
 * while (`callMs`: how long the first call ran).
 */
export async function waitFinished(
  ctx: RunContext,
  node: string,
  { before, lastEnd }: { before: Sizes; lastEnd: number },
  callMs: number,
): Promise<{ status: MemberStatus; how: string } | undefined> {
  const { clock, reporter, opts } = ctx;
  const budget = proofBudgetMs(ctx);
  const started = clock.now();
  const expectShrink = freeBytes(before) >= Math.max(MiB, before.dbSize * 0.05);
  const shrunkTo = before.dbSize - freeBytes(before) / 2;
  const confirmAfter = expectShrink ? Math.min(budget / 2, Math.max(5_000, 4 * callMs)) : 0;
  // The member is most likely still defragmenting: keep telling so while waiting.
  const stopHeartbeat = clock.every(opts.heartbeatMs, () => {
    reporter.heartbeat(node, callMs + clock.now() - started);
  });
  try {
    const outcome = await pollUntil(
      clock,
      { timeoutMs: budget, intervalMs: opts.pollIntervalMs },
      async () => {
        // etcd's own word first (no round trip); a Status answers only once the member is not
        // defragmenting, so the feed is asked again after it. An ended defragment that a broken
        // feed hides is found by the size or the second call.
        const feeds = ctx.live.feeds;
        const logged = (): string | undefined => {
          const ended = feeds.finished(node).find((f) => f.end > lastEnd);
          return feeds.known(node).kind === "quiet" && ended !== undefined
            ? `etcd logged the end of the defragment (it took ${formatDuration(ended.tookMs)}), ${formatDuration(clock.now() - started)} after the call ended`
            : undefined;
        };
        const early = logged();
        const status = await ctx.backend.status(node);
        const how = early ?? logged();
        if (how !== undefined) return { status, how };
        if (expectShrink && status.dbSize <= shrunkTo) {
          return {
            status,
            how: `its DB shrank to ${formatBytes(status.dbSize)}, ${formatDuration(clock.now() - started)} after the call ended`,
          };
        }
        const elapsed = clock.now() - started;
        const remaining = budget - elapsed;
        if (elapsed < confirmAfter || remaining <= 0) return undefined;
        await ctx.backend.defragment(node, { timeoutMs: remaining });
        return {
          status: await ctx.backend.status(node),
          how: "a second defragment call returned, which etcd runs only after the first has ended",
        };
      },
    );
    return "value" in outcome ? outcome.value : undefined;
  } finally {
    stopHeartbeat();
    reporter.heartbeatDone();
  }
}
