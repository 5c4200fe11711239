// A member on an etcd affected by the snapshot/defragment bug (core/etcd-versions.ts) is
// defragmented only while it is fully caught up with the leader: a follower receives a
// raft snapshot only when it has fallen far behind, so a member that has applied all the
// leader has, read just before the call, does not get one during its defragment. This
// step reads the cluster until the member's applied index equals the leader's, up to
// --health-timeout, and otherwise stops the run before the call.

import { DefragError } from "../core/errors.js";
import { judgeEtcdVersion, SNAPSHOT_DEFRAG_FIX } from "../core/etcd-versions.js";
import { caughtUpWithLeader } from "../core/gates.js";
import type { MemberStatus } from "../core/model.js";
import type { PlanItem } from "../core/plan.js";
import { formatDuration } from "../core/units.js";
import type { RunStop } from "../core/result.js";
import type { RunContext } from "./types.js";
import { FIRST_POLL_MS, pollUntil } from "./wait.js";

/**
 * Undefined when the member's etcd is not affected; else its fresh status once caught up
 * (with a note for the result), or why the run stops.
 */
export async function whenCaughtUp(
  ctx: RunContext,
  item: PlanItem,
  status: MemberStatus,
): Promise<{ status: MemberStatus; note: string } | { stop: RunStop } | undefined> {
  const verdict = judgeEtcdVersion(status.protocolVersion);
  if (verdict.kind !== "affected") return undefined;
  const { reporter, opts, clock } = ctx;
  const caught = await pollUntil(
    clock,
    { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs, firstIntervalMs: FIRST_POLL_MS },
    async () => caughtUpWithLeader(await ctx.live.read(), item.node),
  );
  if (!("value" in caught)) {
    const error = new DefragError(
      "refused",
      `${item.node} runs etcd ${status.protocolVersion}, affected by the snapshot/defragment bug, and was not fully caught up with the leader (applied index) within ${formatDuration(opts.healthTimeoutMs)}; not defragmented`,
      {
        node: item.node,
        hint: `${ctx.backend.words.upgradeEtcd}, or run again when the cluster is quieter`,
      },
    );
    reporter.error(error.describe(), { node: item.node, gate: "etcd-version" });
    return {
      stop: {
        kind: "refused",
        error,
        refusals: [{ gate: "etcd-version", node: item.node, message: error.message }],
      },
    };
  }
  reporter.info(
    `${item.node}: etcd ${status.protocolVersion} is affected by the snapshot/defragment bug (${SNAPSHOT_DEFRAG_FIX.prs}); it is fully caught up with the leader (applied index ${caught.value.raftAppliedIndex}), so defragmenting it now`,
    { node: item.node, appliedIndex: caught.value.raftAppliedIndex.toString() },
  );
  return {
    status: caught.value,
    note: `etcd ${status.protocolVersion} is affected by the snapshot/defragment bug: defragmented while fully caught up with the leader`,
  };
}
