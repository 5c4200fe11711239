// Never two members blocked, whoever else is defragmenting: before the first member and before
// each one, every member's feed (src/run/feeds.ts) must show no defragment in progress — one
// started by another run of this tool, a person, or etcd at start-up — and must know it. If one
// is in progress, or a feed cannot tell yet, the run waits (up to --max-wait, told as it goes)
// and starts nothing meanwhile; a feed that can never tell (a role that may not read the log) is
// a refusal at once.

import { DefragError } from "../core/errors.js";
import { checkGates, type GateFailure } from "../core/gates.js";
import type { ClusterView } from "../core/model.js";
import type { RunStop } from "../core/result.js";
import { formatDuration } from "../core/units.js";
import type { Known } from "./feeds.js";
import { untilSteady } from "./lifecycle.js";
import { untilSettled } from "./settle.js";
import type { RunContext } from "./types.js";

/** The end of the last defragment etcd logged on a node, to tell the next one's apart (etcd's clock). */
export function lastFinishedEnd(finished: readonly { end: number }[]): number {
  return Math.max(Number.NEGATIVE_INFINITY, ...finished.map((f) => f.end));
}

type NotQuiet = Exclude<Known, { kind: "quiet" }>;

function describe(k: NotQuiet, now: number): string {
  if (k.kind === "unknown") return `${k.node} (${k.why})`;
  const by = k.by === "start-up" ? "etcd's start-up defragment" : "a defragment call not made by this run";
  const running = k.since === undefined ? "" : `, running for ${formatDuration(Math.max(0, now - k.since))}`;
  return `${k.node} (${by}${running})`;
}

/**
 * Waits until every member is known to be quiet, up to --max-wait in all; undefined when it is,
 * else why the run stops. A dry run waits only until every feed can tell, and says what a real
 * run would wait for.
 */
export async function untilQuiet(ctx: RunContext, before: string): Promise<RunStop | undefined> {
  const { clock, reporter, opts, live, backend } = ctx;
  const feeds = live.feeds;
  const started = clock.now();
  let notQuiet: NotQuiet[] = [];
  const told = new Set<string>();
  /** Each defragment in progress is said once, when first seen. */
  const tellNew = (): void => {
    for (const k of notQuiet) {
      if (k.kind !== "busy" || told.has(k.node)) continue;
      told.add(k.node);
      reporter.warn(
        opts.dryRun
          ? `a defragment is in progress on ${describe(k, clock.now())}: a real run would wait for it first`
          : `a defragment is already in progress on ${describe(k, clock.now())}; waiting up to ${formatDuration(opts.maxWaitMs)} before starting ${before}, and no member is started meanwhile`,
        { node: k.node },
      );
    }
  };
  /** Looks at every feed again: done when all are quiet (a dry run: all can tell), or one never can. */
  const settled = (): boolean => {
    notQuiet = feeds.all().filter((k): k is NotQuiet => k.kind !== "quiet");
    tellNew();
    const waiting = notQuiet.filter((k) => k.kind === "unknown" || !opts.dryRun);
    return waiting.length === 0 || notQuiet.some((k) => k.kind === "unknown" && k.permanent);
  };
  if (!settled()) {
    const stopHeartbeat = clock.every(opts.heartbeatMs, () => {
      reporter.info(
        `still waiting for ${notQuiet.map((k) => (k.kind === "busy" ? `the defragment on ${k.node} to finish` : `${k.node} to tell (${k.why})`)).join(", ")} (waited ${formatDuration(clock.now() - started)})`,
        { nodes: notQuiet.map((k) => k.node) },
      );
    });
    try {
      await feeds.waitUntil(settled, { ms: opts.maxWaitMs, stepMs: opts.pollIntervalMs });
    } finally {
      stopHeartbeat();
    }
  }
  const unknown = notQuiet.filter((k) => k.kind === "unknown");
  // A feed that can never tell refuses at once, on its own account; others still opening are no reason.
  const permanent = unknown.filter((k) => k.permanent);
  if (unknown.length > 0)
    return cannotTell(ctx, permanent.length > 0 ? permanent : unknown, clock.now() - started);
  const busy = opts.dryRun ? [] : notQuiet;
  if (busy.length === 0) {
    if (told.size > 0 && !opts.dryRun)
      reporter.info(
        `the other defragment finished after ${formatDuration(clock.now() - started)} of waiting`,
      );
    return undefined;
  }
  const error = new DefragError(
    "refused",
    `a defragment not started by this run is still in progress on ${busy.map((k) => describe(k, clock.now())).join(", ")} after waiting ${formatDuration(opts.maxWaitMs)}; not starting ${before} while it is`,
    {
      node: busy[0]?.node,
      hint: `find who is defragmenting (another run, ${backend.words.manualDefrag}) and run again when it is done, or raise --max-wait`,
    },
  );
  reporter.error(error.describe());
  return {
    kind: "refused",
    error,
    refusals: busy.map((b) => ({ gate: "quiet", node: b.node, message: error.message })),
  };
}

/**
 * Every node up and serving (src/run/lifecycle.ts), nobody else defragmenting, no recent election
 * (src/run/settle.ts), then a view to check the gates on. When the gates fail while a feed
 * shows a defragment begun meanwhile (another run that waited for the same one, say), the view is
 * about a blocked member, not a sick one: wait for it and read again, rather than refuse.
 */
export async function quietThenView(
  ctx: RunContext,
  before: string,
): Promise<{ view: ClusterView; failures: GateFailure[] } | { stop: RunStop }> {
  for (;;) {
    // The readings the checks below decide on, in parallel (each then serves while fresh); the statuses
    // only while every member is quiet (a member that defragments answers no Status).
    const quietNow = ctx.live.feeds.all().every((k) => k.kind === "quiet");
    await Promise.all([ctx.live.lifecycles(), quietNow ? ctx.live.view() : undefined]);
    const unsteady = await untilSteady(ctx, before);
    if (unsteady !== undefined) return { stop: unsteady };
    const stop = await untilQuiet(ctx, before);
    if (stop !== undefined) return { stop };
    const unsettled = await untilSettled(ctx, before);
    if (unsettled !== undefined) return { stop: unsettled };
    const view = await ctx.live.view();
    const failures = checkGates(view, ctx.gateOpts);
    if (failures.length > 0 && !ctx.opts.dryRun && ctx.live.feeds.all().some((k) => k.kind === "busy"))
      continue;
    return { view, failures };
  }
}

/** The refusal for members whose activity cannot be told: a guess is not good enough to block a member. */
function cannotTell(
  ctx: RunContext,
  unknown: Extract<Known, { kind: "unknown" }>[],
  waitedMs: number,
): RunStop {
  const unreadable = unknown.filter((u) => u.error !== undefined);
  const signal = ctx.backend.words.defragSignal;
  const what =
    unreadable.length === unknown.length
      ? `cannot read ${signal} on ${unreadable.map((u) => `${u.node} (${u.error?.message ?? ""})`).join(", ")}`
      : `after waiting ${formatDuration(waitedMs)}, cannot tell on ${unknown.map((u) => `${u.node}: ${u.why}`).join("; ")}`;
  const error = new DefragError(
    "refused",
    `${what}: cannot tell whether a defragment is already running there, so no member is started`,
    {
      node: unknown[0]?.node,
      hint:
        unreadable[0]?.error?.hint ??
        (unreadable.length > 0
          ? `the credential must be allowed to read ${signal}`
          : `check the member (${ctx.backend.words.inspect(unknown[0]?.node ?? "")}) and run again, or raise --max-wait`),
    },
  );
  ctx.reporter.error(error.describe());
  return {
    kind: "refused",
    error,
    refusals: unknown.map((u) => ({
      gate: "quiet",
      node: u.node,
      message:
        u.error !== undefined
          ? `cannot read ${signal} on ${u.node}: ${u.error.message}`
          : `cannot tell on ${u.node}: ${u.why}`,
    })),
  };
}
