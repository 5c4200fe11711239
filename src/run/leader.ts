// Moving leadership away from the leader before it is defragmented, so that the
// cluster keeps a leader that answers. When the credential may not move it (or
// moving is switched off), the leader is defragmented in place, last.

import type { Permission } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import { checkGates } from "../core/gates.js";
import { isLeader, type MemberStatus } from "../core/model.js";
import type { PlanItem } from "../core/plan.js";
import { formatDuration } from "../core/units.js";
import type { RunContext } from "./types.js";
import { FIRST_POLL_MS, pollUntil } from "./wait.js";

export type LeaderOutcome =
  | { moved: true; to: string; status: MemberStatus }
  | { moved: false; note: string }
  /** The run stops: `reason` is the member's result. */
  | { moved: false; error: DefragError; reason: string };

/** Leader moves over one run: once refused, not asked again (and said once). */
export class LeaderMoves {
  private denied = false;

  constructor(
    private readonly ctx: RunContext,
    private readonly permission: Permission,
    /** The members this run has defragmented so far: the new leader is one of them where it can be. */
    private readonly defragmented: () => readonly string[],
  ) {}

  /**
   * Who should lead instead of `node`, best first: the voting members that answer with no errors,
   * follow the same leader and are caught up (the gates' applied lag), those already defragmented
   * first, in the order they were (a member about to be blocked would lose leadership again).
   */
  private async successors(node: string): Promise<bigint[]> {
    const view = await this.ctx.live.view();
    const self = view.nodes.find((n) => n.node === node);
    const leaderId = self?.ok === true ? self.status.leaderId : undefined;
    const done = this.defragmented();
    // Defragmented members by when (0 first), the others after them in the view's order.
    const rank = (n: string): number => {
      const i = done.indexOf(n);
      return i < 0 ? done.length : i;
    };
    return view.nodes
      .flatMap((n) =>
        n.ok &&
        n.node !== node &&
        !n.status.isLearner &&
        n.status.errors.length === 0 &&
        n.status.leaderId === leaderId &&
        n.status.raftIndex - n.status.raftAppliedIndex <= BigInt(this.ctx.gateOpts.maxAppliedLag)
          ? [{ id: n.status.memberId, rank: rank(n.node) }]
          : [],
      )
      .sort((a, b) => a.rank - b.rank)
      .map((c) => c.id);
  }

  async moveAway(item: PlanItem): Promise<LeaderOutcome> {
    const { reporter, opts } = this.ctx;
    if (!this.permission.allowed || this.denied) {
      const why = this.permission.allowed ? "moving leadership was denied" : this.permission.reason;
      if (!this.denied)
        reporter.info(`${item.node} is the leader: defragmenting it in place, last: ${why}`, {
          node: item.node,
        });
      this.denied = true;
      return { moved: false, note: `defragmented the leader in place: ${why}` };
    }
    reporter.info(`${item.node} is the leader: moving leadership away first`, { node: item.node });
    let to: string;
    try {
      const prefer = await this.successors(item.node);
      if (prefer.length === 0) {
        // A single member (--allow-downtime), or no other voter healthy: nobody to take over.
        reporter.info(
          `${item.node}: no other healthy voting member to take over; defragmenting the leader in place`,
          {
            node: item.node,
          },
        );
        return { moved: false, note: "defragmented the leader in place: no other healthy voting member" };
      }
      to = await this.ctx.backend.forfeitLeadership(item.node, { prefer });
    } catch (err) {
      const e = DefragError.from(err);
      if (e.kind === "permission" && opts.moveLeader === "auto") {
        this.denied = true;
        reporter.info(
          `${item.node}: moving leadership was denied (${e.message}); defragmenting the leader in place, last`,
          {
            node: item.node,
          },
        );
        return {
          moved: false,
          note: `defragmented the leader in place: moving leadership was denied (${e.message})`,
        };
      }
      reporter.error(`${item.node}: could not move leadership: ${e.describe()}`);
      return { moved: false, error: e, reason: `could not move leadership: ${e.describe()}` };
    }
    const confirmed = await pollUntil(
      this.ctx.clock,
      { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs, firstIntervalMs: FIRST_POLL_MS },
      async () => {
        const v = await this.ctx.live.read();
        const n = v.nodes.find((x) => x.node === item.node);
        if (n === undefined || !n.ok || isLeader(n.status) || checkGates(v, this.ctx.gateOpts).length > 0)
          return undefined;
        return n.status;
      },
    );
    if (!("value" in confirmed)) {
      const e = new DefragError(
        "etcd",
        `leadership did not move away from ${item.node} within ${formatDuration(opts.healthTimeoutMs)}`,
        { node: item.node },
      );
      if (opts.moveLeader === "always") return { moved: false, error: e, reason: e.message };
      reporter.warn(`${e.message}; defragmenting it in place`);
      return { moved: false, note: "leadership did not move; defragmented the leader in place" };
    }
    const name = to || "another member";
    reporter.info(`${item.node}: leadership moved to ${name}`, { node: item.node });
    return { moved: true, to: name, status: confirmed.value };
  }
}
