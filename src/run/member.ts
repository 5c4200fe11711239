// One member, start to finish: fresh gates, the rule on fresh numbers, the leader
// moved away (or not), the defragment, proof that it finished, and the member
// healthy again. Returns the member's result and, when the run must stop, why.

import { DefragError, mayStillBeDefragmenting } from "../core/errors.js";
import { checkGates, memberHealthy, type GateOptions } from "../core/gates.js";
import { isLeader, type MemberStatus } from "../core/model.js";
import { decide, describeSizes, hasNospace, type PlanItem } from "../core/plan.js";
import { formatBytes, formatDuration, formatMemberId } from "../core/units.js";
import type { ClusterReader } from "./cluster.js";
import { whenCaughtUp } from "./caught-up.js";
import { callDefragment, proofBudgetMs, waitFinished } from "./in-doubt.js";
import type { LeaderMoves } from "./leader.js";
import { planned, sizes } from "./results.js";
import { quotaOf, type MemberResult, type RunContext, type RunStop } from "./types.js";
import {
  busyNodes,
  lastFinishedEnd,
  QUIET_FRESH_MS,
  readActivity,
  unreadableStop,
  waitUntilQuiet,
  type Activity,
} from "./quiet.js";
import { pollUntil } from "./wait.js";

export interface MemberOutcome {
  result: MemberResult;
  stop?: RunStop;
}

export interface MemberStep {
  cluster: ClusterReader;
  gateOpts: GateOptions;
  leader: LeaderMoves;
  /**
   * The last reading of every member's etcd log (the run's first, or the one taken with the previous
   * member's first health check): it serves the next member while under a second old, with every log
   * read and no defragment in progress.
   */
  quiet?: Activity | undefined;
  /** This is the last member to defragment: after it, only its own log is read (its blocked time). */
  last?: boolean;
}

export async function defragmentMember(
  ctx: RunContext,
  step: MemberStep,
  item: PlanItem,
): Promise<MemberOutcome> {
  const { reporter, opts, clock } = ctx;
  const notReached = (stop: RunStop): MemberOutcome => ({
    result: planned(item, "not-reached", `not reached: ${stop.error.message}`),
    stop,
  });

  // Nobody else is defragmenting any member (waiting while someone is), then fresh numbers
  // and gates just before this member. A reading under a second old serves (the run's first, or the
  // one taken with the previous member's first health check) if it shows nothing in progress and
  // every log read; else every log is read again now.
  const recent =
    step.quiet !== undefined &&
    clock.now() - step.quiet.at < QUIET_FRESH_MS &&
    step.quiet.unreadable.length === 0 &&
    busyNodes(step.quiet).length === 0
      ? { activity: step.quiet }
      : undefined;
  step.quiet = undefined;
  const quiet = recent ?? (await waitUntilQuiet(ctx, step.cluster.nodes, item.node));
  if ("stop" in quiet) return notReached(quiet.stop);
  const view = await step.cluster.fresh();
  const failures = checkGates(view, step.gateOpts);
  if (failures.length > 0) {
    for (const f of failures)
      reporter.error(`gate failed before ${item.node}: ${f.message}`, { gate: f.gate });
    const message = `gate failed before ${item.node}: ${failures.map((f) => f.message).join("; ")}`;
    return notReached({
      kind: "refused",
      error: new DefragError("refused", message, { node: item.node }),
      refusals: failures,
    });
  }
  if (quiet.activity.unreadable.length > 0) {
    const stop = unreadableStop(quiet.activity.unreadable);
    reporter.error(stop.error.describe());
    return notReached(stop);
  }
  const lastEnd = lastFinishedEnd(quiet.activity.byNode.get(item.node));
  const fresh = view.nodes.find((n) => n.node === item.node);
  if (fresh === undefined || !fresh.ok || fresh.status.memberId !== item.memberId) {
    return notReached({
      kind: "failed",
      error: new DefragError("etcd", `member on ${item.node} changed since the plan`, { node: item.node }),
    });
  }
  let status = fresh.status;
  const decision = decide(status, { rule: opts.rule, quotaBytes: quotaOf(ctx, item.node) }, hasNospace(view));
  const base: MemberResult = {
    ...planned(item, "skipped", decision.reason),
    isLeader: isLeader(status),
    before: sizes(status),
  };
  if (!decision.defragment) {
    reporter.info(`${item.node}: skip: ${decision.reason} (fresh numbers)`, { node: item.node });
    return { result: base };
  }

  const notes: string[] = [];
  let leadershipMovedTo: string | undefined;
  if (isLeader(status) && opts.moveLeader !== "never") {
    const moved = await step.leader.moveAway(item);
    if (moved.moved) {
      leadershipMovedTo = moved.to;
      notes.push(`leadership moved to ${moved.to} first`);
      status = moved.status;
    } else if ("error" in moved) {
      return {
        result: { ...planned(item, "failed", moved.reason), before: sizes(status) },
        stop: { kind: "failed", error: moved.error },
      };
    } else {
      notes.push(moved.note);
    }
  } else if (isLeader(status)) {
    notes.push("defragmented the leader in place (--move-leader never)");
    reporter.info(`${item.node} is the leader: defragmenting it in place, last (--move-leader never)`);
  }

  // An affected etcd: only while fully caught up with the leader, read just before the call.
  const caughtUp = await whenCaughtUp(ctx, step.cluster, item, status);
  if (caughtUp !== undefined && "stop" in caughtUp)
    return {
      result: { ...planned(item, "not-reached", caughtUp.stop.error.message), before: sizes(status), notes },
      stop: caughtUp.stop,
    };
  if (caughtUp !== undefined) {
    status = caughtUp.status;
    notes.push(caughtUp.note);
  }

  const before = sizes(status);
  reporter.info(`${item.node}: defragmenting (${describeSizes(status)})`, {
    node: item.node,
    member: formatMemberId(item.memberId),
    dbSize: before.dbSize,
    dbSizeInUse: before.dbSizeInUse,
  });
  const started = clock.now();
  const failed = (error: DefragError, reason: string): MemberOutcome => ({
    result: { ...base, action: "failed", reason, before, notes, durationMs: clock.now() - started },
    stop: { kind: "failed", error },
  });
  const outcome = await callDefragment(ctx, item.node);
  let after: MemberStatus | undefined;
  if (outcome.error !== undefined) {
    const e = outcome.error;
    if (!mayStillBeDefragmenting(e)) {
      reporter.error(`${item.node}: defragment failed: ${e.describe()}`, { node: item.node });
      return failed(e, e.describe());
    }
    const budgetMs = proofBudgetMs(ctx);
    reporter.warn(
      `${item.node}: the defragment call ended after ${formatDuration(clock.now() - started)} without success (${e.message}); etcd keeps defragmenting regardless, so waiting up to ${formatDuration(budgetMs)} for proof that it finished before touching any other member`,
      { node: item.node },
    );
    const proof = await waitFinished(ctx, item.node, { before, lastEnd }, clock.now() - started);
    if (proof === undefined) {
      const error = new DefragError(
        "timeout",
        `no proof that the defragment of ${item.node} finished within ${formatDuration(budgetMs)} after the call ended (${e.message}); stopping without touching any other member`,
        {
          node: item.node,
          hint: `check the member (${ctx.backend.inspectHint(item.node)}) and raise --timeout for a DB this size`,
        },
      );
      reporter.error(error.describe());
      return failed(error, error.message);
    }
    notes.push(`the defragment call ended with "${e.message}"; ${proof.how}`);
    after = proof.status;
  }
  const durationMs = clock.now() - started;

  // This member healthy again before anything else; the next member's gates then check the whole cluster.
  // Meanwhile its etcd log gives its blocked time (etcd logged the defragment's end before its call
  // returned). When the next member follows within a second, every member's log is read instead, at
  // the same time as the first health check, as the first member's were with the first statuses: if
  // that check passes, the reading is the next member's quiet check. A check that passes only later
  // leaves that reading behind, and every log is read again before the next member.
  const nextSoon = step.last !== true && opts.pauseMs < QUIET_FRESH_MS;
  const reading = readActivity(ctx, nextSoon ? step.cluster.nodes : [item.node]);
  // Awaited below; until then a rejection (only a bug) must not count as unhandled.
  reading.catch(() => undefined);
  let checks = 0;
  const healthy = await pollUntil(
    clock,
    { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs },
    async () => {
      checks += 1;
      return memberHealthy(await step.cluster.read(), item.node, opts.maxAppliedLag);
    },
  );
  const activity = await reading;
  if (nextSoon && checks === 1 && "value" in healthy) step.quiet = activity;
  const blockedMs = blockedTime(ctx, item.node, lastEnd, activity);
  if (!("value" in healthy)) {
    const error = new DefragError(
      "etcd",
      `${item.node} was defragmented but did not answer with a leader and caught up within ${formatDuration(opts.healthTimeoutMs)}${healthy.lastError instanceof Error ? ` (${healthy.lastError.message})` : ""}`,
      { node: item.node, hint: "check `talos-etcd-defrag status` before running again" },
    );
    reporter.error(error.describe());
    return {
      result: {
        ...base,
        action: "defragmented",
        before,
        ...(after ? { after: sizes(after) } : {}),
        notes: [...notes, "not healthy again afterwards"],
        durationMs,
        ...(blockedMs === undefined ? {} : { blockedMs }),
      },
      stop: { kind: "failed", error },
    };
  }
  after = healthy.value;
  const reclaimed = before.dbSize - after.dbSize;
  reporter.info(
    `${item.node}: defragmented in ${formatDuration(durationMs)}${blockedMs === undefined ? "" : ` (etcd blocked for ${formatDuration(blockedMs)})`}: ${formatBytes(before.dbSize)} -> ${formatBytes(after.dbSize)} (reclaimed ${formatBytes(reclaimed)})`,
    {
      node: item.node,
      durationMs,
      ...(blockedMs === undefined ? {} : { blockedMs }),
      before: before.dbSize,
      after: after.dbSize,
      reclaimedBytes: reclaimed,
    },
  );
  return {
    result: {
      ...base,
      action: "defragmented",
      before,
      after: sizes(after),
      durationMs,
      ...(blockedMs === undefined ? {} : { blockedMs }),
      notes,
      ...(leadershipMovedTo !== undefined ? { leadershipMovedTo } : {}),
    },
  };
}

/**
 * How long etcd itself was blocked defragmenting this member: the durations it logged
 * for the defragments that ended after `lastEnd` (two when a second call proved the
 * first finished). Undefined, with a warning, when the log does not say.
 */
function blockedTime(ctx: RunContext, node: string, lastEnd: number, activity: Activity): number | undefined {
  const unreadable = activity.unreadable.find((u) => u.node === node);
  if (unreadable !== undefined) {
    ctx.reporter.warn(`${node}: cannot read etcd's log for the blocked time: ${unreadable.error.message}`);
    return undefined;
  }
  const ended = (activity.byNode.get(node)?.finished ?? []).filter((f) => f.end > lastEnd);
  if (ended.length > 0) return ended.reduce((sum, f) => sum + f.tookMs, 0);
  ctx.reporter.warn(
    `${node}: etcd's log does not show the end of the defragment; its blocked time is unknown`,
  );
  return undefined;
}
