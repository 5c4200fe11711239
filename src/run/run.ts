// The run, as its steps: read the cluster (one owner of every reading: src/run/live.ts), nobody
// else defragmenting and the gates, the plan, the credential, a snapshot, then each member in
// turn (src/run/member.ts), then NOSPACE. A step either goes on or returns a stop; one function
// turns a stop into the result (src/run/results.ts, `stopped`). It never starts a member while
// another may still be defragmenting, and stops at the first failure.

import type { Backend } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import { affectedMembers, type GateFailure } from "../core/gates.js";
import type { ClusterView } from "../core/model.js";
import { makePlan, type PlanItem } from "../core/plan.js";
import type { Permissions } from "../core/backend.js";
import { describeQuotas } from "../core/quota.js";
import { alarmText, type RunResult, type RunStop } from "../core/result.js";
import { formatMemberId } from "../core/units.js";
import { LeaderMoves } from "./leader.js";
import { LiveCluster } from "./live.js";
import { defragmentMember } from "./member.js";
import { percent, recoverNospace } from "./nospace.js";
import { preflight } from "./preflight.js";
import { noRoomFor } from "./disk.js";
import { quietThenView } from "./quiet.js";
import { notReachedNode, pendingAfterStop, planned, refusal, Results, stopped } from "./results.js";
import { hashesAfter, hashesBefore } from "./hashes.js";
import { takeSnapshot } from "./snapshot.js";
import type { RunContext, RunDeps, RunOptions } from "./types.js";

export async function runDefrag(backend: Backend, opts: RunOptions, deps: RunDeps): Promise<RunResult> {
  const results = new Results(() => deps.clock.now());
  deps.reporter.info("reading the cluster");
  const live = await LiveCluster.open(backend, deps.clock, {
    nodes: opts.nodes,
    quotaBytes: opts.quotaBytes,
    signal: deps.signal,
    onOthers: (node, by, since) => {
      // Said the moment the feed shows it, with etcd's own time, so the delay can be read off the log.
      deps.reporter.warn(
        `${node}: ${by === "start-up" ? "etcd's start-up defragment" : "a defragment not started by this run"} began; no member is started until it ends`,
        { node, ...(since !== undefined ? { etcdLoggedAt: new Date(since).toISOString() } : {}) },
      );
    },
  });
  const gateOpts = {
    allowDowntime: opts.allowDowntime,
    maxAppliedLag: opts.maxAppliedLag,
    affectedEtcd: opts.affectedEtcd,
    fixedEtcd: backend.words.fixedEtcd,
  };
  const ctx: RunContext = { ...deps, backend, opts, live, gateOpts };
  try {
    const result = await runSteps(ctx, results);
    // Each member's quota as the run judged it, for the summary and the metrics.
    const quotas = live.configs.quotas.byNode;
    return {
      ...result,
      members: result.members.map((m) => {
        const q = quotas.get(m.node);
        return q === undefined ? m : { ...m, quotaBytes: q.bytes };
      }),
    };
  } finally {
    await live.close();
  }
}

async function runSteps(ctx: RunContext, results: Results): Promise<RunResult> {
  const { live, opts } = ctx;
  const start = await beforeFirst(ctx);
  if ("stop" in start) {
    const reason = start.stop.notReached ?? `not reached: ${start.stop.error.message}`;
    const pending = live.first.nodes.map((n) => notReachedNode(n, reason));
    return stopped(results, start.stop, pending, live.alarmsRaised());
  }
  const view = await compactFirst(ctx, results, start.view);
  if ("stop" in view) {
    const pending = live.first.nodes.map((n) => notReachedNode(n, `not reached: ${view.stop.error.message}`));
    return stopped(results, view.stop, pending, live.alarmsRaised());
  }
  const plan = makePlan(view.view, {
    rule: opts.rule,
    quota: (node) => live.quota(node),
    minIntervalMs: opts.minIntervalMs,
    lastDefragmentAgoMs: (node) => live.lastDefragmentAgoMs(node),
  });
  reportPlan(ctx, plan);
  if (opts.dryRun) {
    // A member a real run would skip for want of room is shown so (the disks read in parallel).
    const noRoom = await Promise.all(
      plan.map((p) => (p.defragment ? noRoomFor(ctx, p.node, p.status) : Promise.resolve(undefined))),
    );
    plan.forEach((p, i) => {
      const gate = noRoom[i];
      if (gate === undefined) {
        results.add(planned(p, p.defragment ? "would-defragment" : "skipped"));
        return;
      }
      ctx.reporter.warn(`${p.node}: a real run would skip it: ${gate.message}`, {
        node: p.node,
        gate: gate.gate,
      });
      results.add(planned(p, "skipped", `${gate.message}; ${ctx.backend.words.freeDisk(p.node)}`));
      results.skippedByGate(gate);
    });
    return results.finish("dry-run", { alarmsRaised: live.alarmsRaised() });
  }
  const ready = await beforeChanges(ctx, plan, results);
  if ("stop" in ready)
    return stopped(results, ready.stop, pendingAfterStop(plan, ready.stop, false), live.alarmsRaised());
  const stop = await eachMember(ctx, plan, ready.permissions, results);
  if (stop !== undefined)
    return stopped(results, stop, pendingAfterStop(plan, stop, true), live.alarmsRaised());
  if (results.hashCheck !== undefined && results.defragmented > 0) {
    const after = await hashesAfter(ctx, results.hashCheck, hashedNodes(plan));
    results.hashCheck = after.check;
    if (after.error !== undefined)
      return results.finish("failed", { error: after.error, alarmsRaised: live.alarmsRaised() });
  }
  return afterMembers(ctx, results);
}

/** The members whose data are compared: every one the plan read (learners hold the data too). */
function hashedNodes(plan: readonly PlanItem[]): string[] {
  return plan.map((p) => p.node);
}

/**
 * --compact: etcd's history compacted to the current revision before the plan, so that the rule
 * judges, and the defragments free, what the history held; the view is read again after it. A dry
 * run says it would.
 */
async function compactFirst(
  ctx: RunContext,
  results: Results,
  view: ClusterView,
): Promise<{ view: ClusterView } | { stop: RunStop }> {
  if (!ctx.opts.compact) return { view };
  if (ctx.opts.dryRun) {
    ctx.reporter.info(
      "--compact: a real run compacts etcd's history to the current revision before the plan",
    );
    return { view };
  }
  try {
    const done = await ctx.backend.compact(ctx.signal);
    if ("unsupported" in done) {
      ctx.reporter.warn(`--compact: ${done.unsupported}; not compacted`);
      return { view };
    }
    results.compactedTo = done.revision.toString();
    ctx.reporter.info(`compacted etcd's history to revision ${done.revision}`, {
      revision: done.revision.toString(),
    });
    return { view: await ctx.live.view() };
  } catch (err) {
    const error = DefragError.from(err);
    if (error.kind === "internal") throw error;
    ctx.reporter.error(`--compact failed: ${error.describe()}`);
    return { stop: { kind: "failed", error } };
  }
}

/**
 * Before the plan: the first reading's warnings, every member's quota (a configuration that does
 * not parse refuses the run), nobody else defragmenting (waiting while someone is; a dry run only
 * says so), then the gates, on a view read after any such wait.
 */
async function beforeFirst(ctx: RunContext): Promise<{ view: ClusterView } | { stop: RunStop }> {
  const { live, reporter, opts, backend } = ctx;
  for (const w of live.first.warnings) reporter.warn(w);
  if (opts.affectedEtcd === "caught-up")
    for (const w of affectedMembers(live.first, backend.words.fixedEtcd))
      reporter.warn(
        `${w.warning}; it is defragmented only while fully caught up with the leader (--affected-etcd refuse refuses instead)`,
        { node: w.node, etcdVersion: w.version },
      );
  const quotas = live.configs.quotas;
  if (quotas.refusals.length > 0)
    return refuse(ctx, quotas.refusals, "the run was refused: a member's configuration does not parse");
  if (quotas.warning !== undefined) reporter.warn(quotas.warning);
  reporter.info(describeQuotas(quotas.byNode, backend.words.configName), {
    quotaBytes: Object.fromEntries([...quotas.byNode].map(([n, q]) => [n, q.bytes])),
  });
  const quiet = await quietThenView(ctx, "the first member");
  if ("stop" in quiet) return quiet;
  const { view, failures: failed } = quiet;
  if (failed.length > 0) return refuse(ctx, failed, "the run was refused by a safety gate");
  return { view };
}

/** Before the first change: the credential allows what the plan needs, and the snapshot, when asked for. */
async function beforeChanges(
  ctx: RunContext,
  plan: readonly PlanItem[],
  results: Results,
): Promise<{ permissions: Permissions } | { stop: RunStop }> {
  const permissions = await ctx.backend.permissions(ctx.signal);
  const denied = preflight(plan, permissions, ctx.opts.moveLeader);
  if (denied.length > 0)
    return refuse(ctx, denied, "the run was refused: the credential does not allow what it needs");
  if (ctx.snapshots !== undefined && plan.some((p) => p.defragment)) {
    const taken = await takeSnapshot(ctx, ctx.snapshots, await ctx.live.view());
    if ("stop" in taken) return taken;
    results.snapshot = taken.snapshot;
  }
  if (plan.some((p) => p.defragment)) {
    const hashed = await hashesBefore(ctx, hashedNodes(plan));
    if ("stop" in hashed) return hashed;
    results.hashCheck = hashed.check;
  }
  return { permissions };
}

/** Each member in turn, a pause after each defragment; the first stop ends the loop. */
async function eachMember(
  ctx: RunContext,
  plan: readonly PlanItem[],
  permissions: Permissions,
  results: Results,
): Promise<RunStop | undefined> {
  const leader = new LeaderMoves(ctx, permissions.moveLeadership, () => results.defragmentedNodes());
  const todo = plan.filter((p) => p.defragment);
  for (const item of plan) {
    if (!item.defragment) {
      results.add(planned(item, "skipped"));
      continue;
    }
    if (ctx.signal.aborted) {
      const why = stopReason(ctx.signal);
      ctx.reporter.warn(`stop requested (${why}): ${item.node} and any member after it are not started`);
      return {
        kind: "failed",
        error: new DefragError("aborted", `stopped before ${item.node}: ${why}`, { node: item.node }),
        notReached: `not reached: stopped (${why})`,
      };
    }
    const outcome = await defragmentMember(ctx, leader, item);
    results.add(outcome.result);
    if (outcome.skippedBy !== undefined) results.skippedByGate(outcome.skippedBy);
    if (outcome.stop !== undefined) {
      ctx.reporter.error(`run stopped: ${outcome.stop.error.describe()}`);
      return outcome.stop;
    }
    if (outcome.result.action === "defragmented" && item !== todo.at(-1)) await pause(ctx);
  }
  return undefined;
}

/** NOSPACE; an alarm still raised at the end is not a success (NOSPACE: etcd refuses writes). */
async function afterMembers(ctx: RunContext, results: Results): Promise<RunResult> {
  const nospace = await recoverNospace(ctx);
  if ("stop" in nospace)
    return results.finish("failed", { error: nospace.stop.error, alarmsRaised: ctx.live.alarmsRaised() });
  if (nospace.raised.length > 0) {
    const error = new DefragError(
      "etcd",
      `${nospace.raised.map(alarmText).join(", ")} still raised at the end of the run${nospace.raised.some((a) => a.alarm === "NOSPACE") ? ": etcd refuses writes until NOSPACE is disarmed" : ""}`,
      {
        hint: `see the warnings above; free space or raise the quota, then run again (NOSPACE is disarmed when every member is under ${percent(ctx.opts.nospaceDisarmBelow)} of the quota)`,
      },
    );
    ctx.reporter.error(error.describe());
    return results.finish("alarm-raised", {
      error,
      alarmsDisarmed: nospace.disarmed,
      alarmsRaised: nospace.raised,
    });
  }
  return results.finish(results.defragmented === 0 ? "nothing-to-do" : "success", {
    alarmsDisarmed: nospace.disarmed,
  });
}

/** Why the run was asked to stop: a signal, or the guard against concurrent runs lost. */
function stopReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.message !== "" ? reason.message : "a stop request";
}

/** A refusal by these gates before anything changed: each said, and the stop that ends the run. */
function refuse(ctx: RunContext, refusals: GateFailure[], notReached: string): { stop: RunStop } {
  for (const f of refusals)
    ctx.reporter.error(`refused: ${f.message}`, { gate: f.gate, ...(f.node ? { node: f.node } : {}) });
  return { stop: { kind: "refused", error: refusal(refusals), refusals, notReached } };
}

function reportPlan(ctx: RunContext, plan: readonly PlanItem[]): void {
  const todo = plan.filter((p) => p.defragment);
  ctx.reporter.info(
    `plan: ${todo.length === 0 ? "nothing to defragment" : `defragment ${todo.map((p) => p.node).join(", ")} in this order`}`,
    {
      rule: ctx.opts.rule.source,
      ...(ctx.opts.rule.preset === undefined ? {} : { rulePreset: `@${ctx.opts.rule.preset}` }),
      quotaBytes: Object.fromEntries([...ctx.live.configs.quotas.byNode].map(([n, q]) => [n, q.bytes])),
    },
  );
  for (const p of plan) {
    ctx.reporter.info(
      `${p.node}${p.isLeader ? " (leader)" : ""}: ${p.defragment ? "defragment" : "skip"}: ${p.reason}`,
      { node: p.node, member: formatMemberId(p.memberId) },
    );
  }
}

/** Settle time between members; a stop request cuts it short (the loop then starts nothing new). */
async function pause(ctx: RunContext): Promise<void> {
  if (ctx.opts.pauseMs <= 0) return;
  try {
    await ctx.clock.sleep(ctx.opts.pauseMs, ctx.signal);
  } catch {
    // Interrupted by a signal.
  }
}
