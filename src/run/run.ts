// The run, as its steps: read the cluster, check the gates, plan, check the
// credential, then each member in turn (src/run/member.ts), then NOSPACE. It never
// starts a member while another may still be defragmenting, and stops at the first
// failure. Every per-member result is written through one Results.

import type { Backend } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import { affectedMembers, checkGates, type GateFailure } from "../core/gates.js";
import { makePlan, type PlanItem } from "../core/plan.js";
import { ETCD_DEFAULT_QUOTA_BYTES } from "../core/member-config.js";
import { formatBytes, formatMemberId } from "../core/units.js";
import { describeQuotas, readMemberConfigs } from "./member-config.js";
import { ClusterReader } from "./cluster.js";
import { LeaderMoves } from "./leader.js";
import { defragmentMember, type MemberStep } from "./member.js";
import { percent, recoverNospace } from "./nospace.js";
import { observeCluster } from "./observe.js";
import { preflight } from "./preflight.js";
import { takeSnapshot } from "./snapshot.js";
import { busyNodes, readActivity, unreadableStop, waitUntilQuiet, type Activity } from "./quiet.js";
import { alarmText, notReachedNode, planned, refusal, Results } from "./results.js";
import type { RunContext, RunDeps, RunOptions, RunResult, RunStop } from "./types.js";

export async function runDefrag(backend: Backend, opts: RunOptions, deps: RunDeps): Promise<RunResult> {
  const ctx: RunContext = { ...deps, backend, opts, quotas: new Map() };
  const result = await runSteps(ctx);
  // Each member's quota as the run used it, for the summary and the metrics.
  return {
    ...result,
    members: result.members.map((m) => {
      const quotaBytes = ctx.quotas.get(m.node);
      return quotaBytes === undefined ? m : { ...m, quotaBytes };
    }),
  };
}

async function runSteps(ctx: RunContext): Promise<RunResult> {
  const { reporter, backend, opts } = ctx;
  const deps = ctx;
  const results = new Results(() => deps.clock.now());

  // 1. Read the cluster. As soon as the nodes are known, at the same time: each member's quota, from
  // its own configuration unless --quota-bytes says otherwise, and every member's etcd log (is anyone
  // else defragmenting?). Neither waits for anything, so nothing is left running if the read fails.
  reporter.info("reading the cluster");
  let side: Promise<[RunStop | undefined, Activity]> | undefined;
  const firstRead = await observeCluster(backend, {
    nodes: opts.nodes,
    signal: deps.signal,
    onNodes: (nodes) => {
      side = Promise.all([readQuotas(ctx, nodes), readActivity(ctx, nodes)]);
      // Awaited below; until then a rejection (only a bug) must not count as unhandled.
      side.catch(() => undefined);
    },
  });
  for (const w of firstRead.warnings) reporter.warn(w);
  const cluster = new ClusterReader(backend, deps.clock, firstRead);
  const gateOpts = {
    allowDowntime: opts.allowDowntime,
    maxAppliedLag: opts.maxAppliedLag,
    affectedEtcd: opts.affectedEtcd,
  };
  if (opts.affectedEtcd === "caught-up")
    for (const w of affectedMembers(firstRead))
      reporter.warn(
        `${w.warning}; it is defragmented only while fully caught up with the leader (--affected-etcd refuse refuses instead)`,
        { node: w.node, etcdVersion: w.version },
      );

  // 2. Nobody else is defragmenting any member (waiting while someone is; a dry run only says so),
  // then the gates, on numbers read after any such wait.
  const [configStop, activity] = await (side ??
    Promise.all([readQuotas(ctx, cluster.nodes), readActivity(ctx, cluster.nodes)]));
  const quiet = opts.dryRun
    ? dryRunQuiet(ctx, activity)
    : busyNodes(activity).length === 0
      ? { activity, waited: false }
      : await waitUntilQuiet(ctx, cluster.nodes, "the first member");
  if (configStop !== undefined) {
    reportRefusals(ctx, configStop.refusals ?? []);
    for (const n of firstRead.nodes)
      results.add(notReachedNode(n, "the run was refused: a member's configuration does not parse"));
    return results.finish("refused", {
      refusals: configStop.refusals ?? [],
      error: configStop.error,
      alarmsRaised: cluster.alarmsRaised(),
    });
  }
  if ("stop" in quiet) {
    for (const n of firstRead.nodes)
      results.add(notReachedNode(n, `not reached: ${quiet.stop.error.message}`));
    return results.finish("refused", {
      refusals: quiet.stop.refusals ?? [],
      error: quiet.stop.error,
      alarmsRaised: cluster.alarmsRaised(),
    });
  }
  const initial = quiet.waited ? await cluster.read() : firstRead;
  const unreadable =
    quiet.activity.unreadable.length > 0 ? unreadableStop(quiet.activity.unreadable) : undefined;
  const failedGates = checkGates(initial, gateOpts);
  const refusals = [...failedGates, ...(unreadable?.refusals ?? [])];
  if (refusals.length > 0) {
    reportRefusals(ctx, refusals);
    for (const n of initial.nodes) results.add(notReachedNode(n, "the run was refused by a safety gate"));
    return results.finish("refused", {
      refusals,
      // A log that cannot be read alone says so in its own words (what it means, what to do).
      error: failedGates.length === 0 && unreadable ? unreadable.error : refusal(refusals),
      alarmsRaised: cluster.alarmsRaised(),
    });
  }

  // 3. The plan.
  const plan = makePlan(initial, {
    rule: opts.rule,
    quotaBytes: opts.quotaBytes ?? ETCD_DEFAULT_QUOTA_BYTES,
    quotaByNode: ctx.quotas,
  });
  reportPlan(ctx, plan);
  if (opts.dryRun) {
    for (const p of plan) results.add(planned(p, p.defragment ? "would-defragment" : "skipped"));
    return results.finish("dry-run", { alarmsRaised: cluster.alarmsRaised() });
  }

  // 4. The credential allows what the plan needs.
  const permissions = await backend.permissions(deps.signal);
  const denied = preflight(plan, permissions, opts.moveLeader);
  if (denied.length > 0) {
    reportRefusals(ctx, denied);
    for (const p of plan)
      results.add(
        planned(p, "not-reached", "the run was refused: the credential does not allow what it needs"),
      );
    return results.finish("refused", {
      refusals: denied,
      error: refusal(denied),
      alarmsRaised: cluster.alarmsRaised(),
    });
  }

  // 5. A snapshot first, when asked for and there is something to defragment.
  if (deps.snapshots !== undefined && plan.some((p) => p.defragment)) {
    const taken = await takeSnapshot(ctx, deps.snapshots, await cluster.fresh());
    if ("stop" in taken) {
      for (const p of plan)
        results.add(planned(p, "not-reached", `not reached: ${taken.stop.error.message}`));
      return results.finish("refused", {
        refusals: taken.stop.refusals ?? [],
        error: taken.stop.error,
        alarmsRaised: cluster.alarmsRaised(),
      });
    }
    results.snapshot = taken.snapshot;
  }

  // 6. Each member in turn; after a stop, the rest are not reached.
  const step: MemberStep = {
    cluster,
    gateOpts,
    leader: new LeaderMoves(ctx, cluster, gateOpts, permissions.moveLeadership),
    quiet: quiet.activity,
    last: false,
  };
  const lastTodo = plan.filter((p) => p.defragment).at(-1);
  let stop: RunStop | undefined;
  for (const item of plan) {
    if (!item.defragment) {
      results.add(planned(item, "skipped"));
    } else if (stop !== undefined) {
      results.add(planned(item, "not-reached", `not reached: ${stop.error.message}`));
    } else if (deps.signal.aborted) {
      const why = stopReason(deps.signal);
      reporter.warn(`stop requested (${why}): ${item.node} and any member after it are not started`);
      stop = {
        kind: "failed",
        error: new DefragError("aborted", `stopped before ${item.node}: ${why}`, { node: item.node }),
      };
      results.add(planned(item, "not-reached", `not reached: stopped (${why})`));
    } else {
      step.last = item === lastTodo;
      const outcome = await defragmentMember(ctx, step, item);
      results.add(outcome.result);
      stop = outcome.stop;
      if (stop === undefined && outcome.result.action === "defragmented" && item !== lastTodo)
        await pause(ctx);
    }
  }
  if (stop !== undefined) {
    reporter.error(`run stopped: ${stop.error.describe()}`);
    // A gate that fails before anything was defragmented is a refusal; afterwards, a failure.
    const kind = stop.kind === "refused" && results.defragmented === 0 ? "refused" : "failed";
    return results.finish(kind, {
      error: stop.error,
      refusals: stop.refusals ?? [],
      alarmsRaised: cluster.alarmsRaised(),
    });
  }

  // 7. NOSPACE; an alarm still raised at the end is not a success (NOSPACE: etcd refuses writes).
  const nospace = await recoverNospace(ctx, cluster);
  if ("stop" in nospace)
    return results.finish("failed", { error: nospace.stop.error, alarmsRaised: cluster.alarmsRaised() });
  if (nospace.raised.length > 0) {
    const error = new DefragError(
      "etcd",
      `${nospace.raised.map(alarmText).join(", ")} still raised at the end of the run${nospace.raised.some((a) => a.alarm === "NOSPACE") ? ": etcd refuses writes until NOSPACE is disarmed" : ""}`,
      {
        hint: `see the warnings above; free space or raise the quota, then run again (NOSPACE is disarmed when every member is under ${percent(opts.nospaceDisarmBelow)} of the quota)`,
      },
    );
    reporter.error(error.describe());
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

/**
 * Fills ctx.quotas: --quota-bytes for every member (and says so), else each member's own
 * configuration; one warning for those that cannot be read (etcd's default assumed), a
 * refusal for a configuration that does not parse.
 */
async function readQuotas(ctx: RunContext, nodes: readonly string[]): Promise<RunStop | undefined> {
  const override = ctx.opts.quotaBytes;
  if (override !== undefined) {
    for (const node of nodes) ctx.quotas.set(node, override);
    ctx.reporter.info(
      `etcd quota: ${formatBytes(override)} for every member, from --quota-bytes (overrides the quota configured on the nodes, which is not read)`,
      { quotaBytes: override },
    );
    return undefined;
  }
  const configs = await readMemberConfigs(ctx.backend, nodes, { signal: ctx.signal });
  for (const [node, q] of configs.quotas) ctx.quotas.set(node, q.bytes);
  if (configs.invalid.length > 0) {
    const refusals: GateFailure[] = configs.invalid.map((e) => ({
      gate: "member-config",
      message: e.describe(),
      ...(e.node !== undefined ? { node: e.node } : {}),
    }));
    return { kind: "refused", error: refusal(refusals), refusals };
  }
  if (configs.warning !== undefined) ctx.reporter.warn(configs.warning);
  ctx.reporter.info(describeQuotas(configs.quotas));
  return undefined;
}

/** A dry run waits for nobody: it says what a real run would wait for, and refuses what it would refuse. */
function dryRunQuiet(ctx: RunContext, activity: Activity): { activity: Activity; waited: false } {
  for (const b of busyNodes(activity))
    ctx.reporter.warn(
      `a defragment is in progress on ${b.node} (${b.by}): a real run would wait for it first`,
      {
        node: b.node,
      },
    );
  return { activity, waited: false };
}

/** Why the run was asked to stop: a signal, or the guard against concurrent runs lost. */
function stopReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.message !== "" ? reason.message : "a stop request";
}

function reportRefusals(ctx: RunContext, refusals: GateFailure[]): void {
  for (const f of refusals)
    ctx.reporter.error(`refused: ${f.message}`, { gate: f.gate, ...(f.node ? { node: f.node } : {}) });
}

function reportPlan(ctx: RunContext, plan: readonly PlanItem[]): void {
  const todo = plan.filter((p) => p.defragment);
  ctx.reporter.info(
    `plan: ${todo.length === 0 ? "nothing to defragment" : `defragment ${todo.map((p) => p.node).join(", ")} in this order`}`,
    { rule: ctx.opts.rule.source, quotaBytes: Object.fromEntries(ctx.quotas) },
  );
  for (const p of plan) {
    ctx.reporter.info(
      `${p.node}${p.isLeader ? " (leader)" : ""}: ${p.defragment ? "defragment" : "skip"}: ${p.reason}`,
      {
        node: p.node,
        member: formatMemberId(p.memberId),
      },
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
