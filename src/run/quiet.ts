// Never two members blocked, whoever else is defragmenting: before each member, etcd's
// own log on every member must show no defragment in progress — one started by
// another run of this tool, a person (talosctl etcd defrag), or etcd at start-up. If
// one is, the run waits for it (up to --max-wait) and starts nothing meanwhile.

import { DefragError } from "../core/errors.js";
import type { DefragActivity } from "../core/model.js";
import { formatDuration } from "../core/units.js";
import type { RunContext, RunStop } from "./types.js";

/** The end of the last defragment etcd logged on a node, to tell the next one's apart (etcd's clock). */
export function lastFinishedEnd(a: DefragActivity | undefined): number {
  return Math.max(Number.NEGATIVE_INFINITY, ...(a?.finished ?? []).map((f) => f.end));
}

/** How long a reading of every member's log may serve before a member is started. */
export const QUIET_FRESH_MS = 1000;

/** Reading every member's log each poll is not free: no more often than this. */
const MIN_POLL_MS = 1000;

export interface Activity {
  /** When the reading started (the run's clock): it serves a member only while under QUIET_FRESH_MS old. */
  at: number;
  /** Per node, what its etcd log says. */
  byNode: Map<string, DefragActivity>;
  /** Nodes whose log could not be read: whether they are defragmenting is unknown. */
  unreadable: { node: string; error: DefragError }[];
}

/** Reads every node's defragmentation activity at once. */
export async function readActivity(ctx: RunContext, nodes: readonly string[]): Promise<Activity> {
  const at = ctx.clock.now();
  const byNode = new Map<string, DefragActivity>();
  const unreadable: Activity["unreadable"] = [];
  await Promise.all(
    nodes.map(async (node) => {
      try {
        byNode.set(node, await ctx.backend.defragActivity(node));
      } catch (err) {
        const e = DefragError.from(err);
        if (e.kind === "internal") throw e;
        unreadable.push({ node, error: e });
      }
    }),
  );
  return { at, byNode, unreadable };
}

export function busyNodes(activity: Activity): { node: string; since: number | undefined; by: string }[] {
  return [...activity.byNode]
    .filter(([, a]) => a.inProgress !== undefined)
    .map(([node, a]) => ({
      node,
      since: a.inProgress?.since,
      by:
        a.inProgress?.by === "start-up"
          ? "etcd's start-up defragment"
          : "a defragment call not made by this run",
    }));
}

/** The refusal for logs that cannot be read: a guess is not good enough to block a member. */
export function unreadableStop(unreadable: Activity["unreadable"]): RunStop {
  const what = unreadable.map((u) => `${u.node} (${u.error.message})`).join(", ");
  return {
    kind: "refused",
    error: new DefragError(
      "refused",
      `cannot read etcd's log on ${what}: cannot tell whether a defragment is already running there, so no member is started`,
      {
        node: unreadable[0]?.node,
        hint: unreadable[0]?.error.hint ?? "the credential must be allowed to read the etcd service's log",
      },
    ),
    refusals: unreadable.map((u) => ({
      gate: "quiet",
      node: u.node,
      message: `cannot read etcd's log on ${u.node}: ${u.error.message}`,
    })),
  };
}

/**
 * Waits until no node is defragmenting, up to --max-wait in all. Returns the activity
 * last read (every node, unreadable ones listed), or the stop when the wait ran out.
 */
export async function waitUntilQuiet(
  ctx: RunContext,
  nodes: readonly string[],
  before: string,
): Promise<{ activity: Activity; waited: boolean } | { stop: RunStop }> {
  const { clock, reporter, opts } = ctx;
  const started = clock.now();
  let activity = await readActivity(ctx, nodes);
  let busy = busyNodes(activity);
  if (busy.length === 0) return { activity, waited: false };

  const describe = (): string =>
    busy
      .map(
        (b) =>
          `${b.node} (${b.by}${b.since === undefined ? "" : `, running for ${formatDuration(Math.max(0, clock.now() - b.since))}`})`,
      )
      .join(", ");
  reporter.warn(
    `a defragment is already in progress on ${describe()}; waiting up to ${formatDuration(opts.maxWaitMs)} before starting ${before}, and no member is started meanwhile`,
    { nodes: busy.map((b) => b.node) },
  );
  const stopHeartbeat = clock.every(opts.heartbeatMs, () => {
    reporter.info(
      `still waiting for the defragment on ${busy.map((b) => b.node).join(", ")} to finish (waited ${formatDuration(clock.now() - started)})`,
      { nodes: busy.map((b) => b.node) },
    );
  });
  try {
    for (;;) {
      if (clock.now() - started >= opts.maxWaitMs) {
        const error = new DefragError(
          "refused",
          `a defragment not started by this run is still in progress on ${describe()} after waiting ${formatDuration(opts.maxWaitMs)}; not starting ${before} while it is`,
          {
            node: busy[0]?.node,
            hint: "find who is defragmenting (another run, talosctl etcd defrag) and run again when it is done, or raise --max-wait",
          },
        );
        reporter.error(error.describe());
        return {
          stop: {
            kind: "refused",
            error,
            refusals: busy.map((b) => ({ gate: "quiet", node: b.node, message: error.message })),
          },
        };
      }
      await clock.sleep(Math.max(opts.pollIntervalMs, MIN_POLL_MS));
      // Only the busy ones can end the wait; once they are done, every node is read again.
      const again = await readActivity(
        ctx,
        busy.map((b) => b.node),
      );
      if (busyNodes(again).length > 0) {
        busy = busyNodes(again);
        continue;
      }
      activity = await readActivity(ctx, nodes);
      busy = busyNodes(activity);
      if (busy.length === 0) {
        reporter.info(
          `the other defragment finished after ${formatDuration(clock.now() - started)} of waiting`,
        );
        return { activity, waited: true };
      }
    }
  } finally {
    stopHeartbeat();
  }
}
