// One member, start to finish: nobody else defragmenting and fresh gates (ready), the rule on
// fresh numbers, the leader moved away and an affected etcd caught up (prepared), then the
// defragment, proof that it finished and the member healthy again (src/run/defragment.ts).
// Returns the member's result and, when the run must stop, why.

import { DefragError } from "../core/errors.js";
import type { GateFailure } from "../core/gates.js";
import { isLeader, type MemberStatus } from "../core/model.js";
import { decide, hasNospace, type PlanItem } from "../core/plan.js";
import { sizes, type MemberResult, type RunStop } from "../core/result.js";
import { whenCaughtUp } from "./caught-up.js";
import { defragmentNow } from "./defragment.js";
import { noRoomFor } from "./disk.js";
import type { LeaderMoves } from "./leader.js";
import { quietThenView } from "./quiet.js";
import { planned } from "./results.js";
import type { RunContext } from "./types.js";

export interface MemberOutcome {
  result: MemberResult;
  stop?: RunStop;
  /** A gate that made the run skip this member (and go on): disk. */
  skippedBy?: GateFailure;
}

/** What a member goes into its defragment with. */
export interface Prepared {
  status: MemberStatus;
  base: MemberResult;
  notes: string[];
  leadershipMovedTo?: string;
}

export async function defragmentMember(
  ctx: RunContext,
  leader: LeaderMoves,
  item: PlanItem,
): Promise<MemberOutcome> {
  const ready = await readyToStart(ctx, item);
  if ("result" in ready) return ready;
  const prepared = await prepare(ctx, leader, item, ready);
  if ("result" in prepared) return prepared;
  return defragmentNow(ctx, item, prepared);
}

/**
 * Nobody else is defragmenting any member (waiting while someone is), then the gates on a fresh
 * view just before this member, and the rule on its fresh numbers.
 */
async function readyToStart(
  ctx: RunContext,
  item: PlanItem,
): Promise<{ status: MemberStatus; base: MemberResult } | MemberOutcome> {
  const { reporter, opts, live } = ctx;
  // Its disk is read beside the other checks' readings, not after them.
  void live.disk(item.node, ctx.signal).catch(() => undefined);
  const notReached = (stop: RunStop): MemberOutcome => ({
    result: planned(item, "not-reached", `not reached: ${stop.error.message}`),
    stop,
  });
  const quiet = await quietThenView(ctx, item.node);
  if ("stop" in quiet) return notReached(quiet.stop);
  const { view, failures } = quiet;
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
  const fresh = view.nodes.find((n) => n.node === item.node);
  if (fresh === undefined || !fresh.ok || fresh.status.memberId !== item.memberId) {
    return notReached({
      kind: "failed",
      error: new DefragError("etcd", `member on ${item.node} changed since the plan`, { node: item.node }),
    });
  }
  const status = fresh.status;
  const decision = decide(
    status,
    {
      rule: opts.rule,
      quotaBytes: live.quota(item.node),
      minIntervalMs: opts.minIntervalMs,
      lastDefragmentAgoMs: live.lastDefragmentAgoMs(item.node),
    },
    hasNospace(view),
  );
  const base: MemberResult = {
    ...planned(item, "skipped", decision.reason),
    isLeader: isLeader(status),
    before: sizes(status),
  };
  if (!decision.defragment) {
    reporter.info(`${item.node}: skip: ${decision.reason} (fresh numbers)`, { node: item.node });
    return { result: base };
  }
  const noRoom = await noRoomFor(ctx, item.node, status);
  if (noRoom !== undefined) {
    reporter.error(`${item.node}: skip: ${noRoom.message}`, { node: item.node, gate: noRoom.gate });
    return {
      result: { ...base, reason: `${noRoom.message}; ${ctx.backend.words.freeDisk(item.node)}` },
      skippedBy: noRoom,
    };
  }
  return { status, base };
}

/** The leader moved away (or kept, said why), and an affected etcd fully caught up, just before the call. */
async function prepare(
  ctx: RunContext,
  leader: LeaderMoves,
  item: PlanItem,
  ready: { status: MemberStatus; base: MemberResult },
): Promise<Prepared | MemberOutcome> {
  const { reporter, opts } = ctx;
  let status = ready.status;
  const notes: string[] = [];
  let leadershipMovedTo: string | undefined;
  if (isLeader(status) && opts.moveLeader !== "never") {
    const moved = await leader.moveAway(item);
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
  const caughtUp = await whenCaughtUp(ctx, item, status);
  if (caughtUp !== undefined && "stop" in caughtUp)
    return {
      result: { ...planned(item, "not-reached", caughtUp.stop.error.message), before: sizes(status), notes },
      stop: caughtUp.stop,
    };
  if (caughtUp !== undefined) {
    status = caughtUp.status;
    notes.push(caughtUp.note);
  }
  return {
    status,
    base: ready.base,
    notes,
    ...(leadershipMovedTo !== undefined ? { leadershipMovedTo } : {}),
  };
}
