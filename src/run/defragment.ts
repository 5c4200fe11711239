// The defragment of one prepared member: the call, proof that it finished when the call did not
// succeed (src/run/in-doubt.ts), the member healthy again before anything else, and how long etcd
// itself was blocked, from what its feed says etcd logged.

import { DefragError, mayStillBeDefragmenting } from "../core/errors.js";
import { memberHealthy } from "../core/gates.js";
import type { MemberStatus } from "../core/model.js";
import { describeSizes, type PlanItem } from "../core/plan.js";
import { sizes, type MemberResult, type Sizes } from "../core/result.js";
import { formatBytes, formatDuration, formatMemberId } from "../core/units.js";
import { callDefragment, proofBudgetMs, waitFinished } from "./in-doubt.js";
import type { MemberOutcome, Prepared } from "./member.js";
import { lastFinishedEnd } from "./quiet.js";
import type { RunContext } from "./types.js";
import { FIRST_POLL_MS, pollUntil } from "./wait.js";

/** How long the end of a defragment may take to come through the member's feed after its call returned. */
const END_LINE_MS = 2000;

export async function defragmentNow(ctx: RunContext, item: PlanItem, p: Prepared): Promise<MemberOutcome> {
  const { reporter, clock, live } = ctx;
  const before = sizes(p.status);
  // Defragments etcd logged before this one, to tell this one's end apart.
  const lastEnd = lastFinishedEnd(live.feeds.finished(item.node));
  reporter.info(`${item.node}: defragmenting (${describeSizes(p.status)})`, {
    node: item.node,
    member: formatMemberId(item.memberId),
    dbSize: before.dbSize,
    dbSizeInUse: before.dbSizeInUse,
  });
  const started = clock.now();
  live.feeds.ours(item.node, true);
  try {
    return await callAndProve(ctx, item, p, { before, lastEnd, started });
  } finally {
    live.feeds.ours(item.node, false);
  }
}

/** The call, and proof that it finished when it did not succeed; then the member healthy again. */
async function callAndProve(
  ctx: RunContext,
  item: PlanItem,
  p: Prepared,
  { before, lastEnd, started }: { before: Sizes; lastEnd: number; started: number },
): Promise<MemberOutcome> {
  const { reporter, clock } = ctx;
  const outcome = await callDefragment(ctx, item.node);
  let after: MemberStatus | undefined;
  if (outcome.error !== undefined) {
    const e = outcome.error;
    const failed = (error: DefragError): MemberOutcome => ({
      result: {
        ...p.base,
        action: "failed",
        reason: error === e ? e.describe() : error.message,
        before,
        notes: p.notes,
        durationMs: clock.now() - started,
      },
      stop: { kind: "failed", error },
    });
    if (!mayStillBeDefragmenting(e)) {
      reporter.error(`${item.node}: defragment failed: ${e.describe()}`, { node: item.node });
      return failed(e);
    }
    const proof = await inDoubt(ctx, item.node, e, { before, lastEnd, callMs: clock.now() - started });
    if ("error" in proof) return failed(proof.error);
    p.notes.push(`the defragment call ended with "${e.message}"; ${proof.how}`);
    after = proof.status;
  }
  return healthyAgain(ctx, item, p, { before, after, started, lastEnd });
}

/** After a call that ended without success: waits for proof that the member finished, or says why not. */
async function inDoubt(
  ctx: RunContext,
  node: string,
  e: DefragError,
  was: { before: Sizes; lastEnd: number; callMs: number },
): Promise<{ status: MemberStatus; how: string } | { error: DefragError }> {
  const { reporter } = ctx;
  const budgetMs = proofBudgetMs(ctx);
  reporter.warn(
    `${node}: the defragment call ended after ${formatDuration(was.callMs)} without success (${e.message}); etcd keeps defragmenting regardless, so waiting up to ${formatDuration(budgetMs)} for proof that it finished before touching any other member`,
    { node },
  );
  const proof = await waitFinished(ctx, node, was, was.callMs);
  if (proof !== undefined) return proof;
  const error = new DefragError(
    "timeout",
    `no proof that the defragment of ${node} finished within ${formatDuration(budgetMs)} after the call ended (${e.message}); stopping without touching any other member`,
    {
      node,
      hint: `check the member (${ctx.backend.words.inspect(node)}) and raise --timeout for a DB this size`,
    },
  );
  reporter.error(error.describe());
  return { error };
}

/**
 * This member healthy again before anything else (the next member's gates then check the whole
 * cluster); meanwhile its feed gives its blocked time.
 */
async function healthyAgain(
  ctx: RunContext,
  item: PlanItem,
  p: Prepared,
  d: { before: Sizes; after: MemberStatus | undefined; started: number; lastEnd: number },
): Promise<MemberOutcome> {
  const { reporter, opts, clock, live } = ctx;
  const durationMs = clock.now() - d.started;
  const healthy = await pollUntil(
    clock,
    { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs, firstIntervalMs: FIRST_POLL_MS },
    async () => memberHealthy(await live.read(), item.node, opts.maxAppliedLag),
  );
  const blockedMs = await blockedTime(ctx, item.node, d.lastEnd);
  const done: MemberResult = {
    ...p.base,
    action: "defragmented",
    before: d.before,
    durationMs,
    ...(blockedMs === undefined ? {} : { blockedMs }),
    notes: p.notes,
    ...(p.leadershipMovedTo !== undefined ? { leadershipMovedTo: p.leadershipMovedTo } : {}),
  };
  if (!("value" in healthy)) {
    const error = new DefragError(
      "etcd",
      `${item.node} was defragmented but did not answer with a leader and caught up within ${formatDuration(opts.healthTimeoutMs)}${healthy.lastError instanceof Error ? ` (${healthy.lastError.message})` : ""}`,
      { node: item.node, hint: "check `talos-etcd-defrag status` before running again" },
    );
    reporter.error(error.describe());
    const after = d.after ? { after: sizes(d.after) } : {};
    return {
      result: { ...done, ...after, notes: [...p.notes, "not healthy again afterwards"] },
      stop: { kind: "failed", error },
    };
  }
  const reclaimed = d.before.dbSize - healthy.value.dbSize;
  reporter.info(
    `${item.node}: defragmented in ${formatDuration(durationMs)}${blockedMs === undefined ? "" : ` (etcd blocked for ${formatDuration(blockedMs)})`}: ${formatBytes(d.before.dbSize)} -> ${formatBytes(healthy.value.dbSize)} (reclaimed ${formatBytes(reclaimed)})`,
    {
      node: item.node,
      durationMs,
      ...(blockedMs === undefined ? {} : { blockedMs }),
      before: d.before.dbSize,
      after: healthy.value.dbSize,
      reclaimedBytes: reclaimed,
    },
  );
  return { result: { ...done, after: sizes(healthy.value) } };
}

/**
 * How long etcd itself was blocked defragmenting this member: the durations it logged for the
 * defragments that ended after `lastEnd` (two when a second call proved the first finished), as
 * its feed brings them. Undefined, with a warning, when the feed does not say.
 */
async function blockedTime(ctx: RunContext, node: string, lastEnd: number): Promise<number | undefined> {
  const feeds = ctx.live.feeds;
  const ended = () => feeds.finished(node).filter((f) => f.end > lastEnd);
  await feeds.waitUntil(() => ended().length > 0 || feeds.known(node).kind === "unknown", {
    ms: END_LINE_MS,
    stepMs: ctx.opts.pollIntervalMs,
  });
  const known = feeds.known(node);
  if (known.kind === "unknown") {
    ctx.reporter.warn(
      `${node}: cannot read ${ctx.backend.words.defragSignal} for the blocked time: ${known.why}`,
    );
    return undefined;
  }
  const list = ended();
  if (list.length > 0) return list.reduce((sum, f) => sum + f.tookMs, 0);
  ctx.reporter.warn(
    `${node}: ${ctx.backend.words.defragSignal} does not show the end of the defragment; its blocked time is unknown`,
  );
  return undefined;
}
