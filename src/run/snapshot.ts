// A snapshot first, on request (--snapshot-dir): before the first defragment, an etcd snapshot
// streamed from a healthy member through the backend into the store, checked there (size, etcd's
// own sha256 at its end). When it fails, the run is refused and nothing is defragmented.

import { DefragError } from "../core/errors.js";
import { isLeader, type ClusterView } from "../core/model.js";
import { formatBytes, formatDuration } from "../core/units.js";
import type { SnapshotStore } from "../core/ports.js";
import type { RunStop, SnapshotResult } from "../core/result.js";
import type { RunContext } from "./types.js";

/** The member to snapshot: the leader when it answers (the newest data), else the most applied. */
export function snapshotSource(view: ClusterView): string | undefined {
  const answering = view.nodes.filter((n) => n.ok && !n.status.isLearner);
  const leader = answering.find((n) => n.ok && isLeader(n.status));
  if (leader !== undefined) return leader.node;
  const byApplied = [...answering].sort((a, b) =>
    a.ok && b.ok ? Number(b.status.raftAppliedIndex - a.status.raftAppliedIndex) : 0,
  );
  return byApplied[0]?.node;
}

export async function takeSnapshot(
  ctx: RunContext,
  store: SnapshotStore,
  view: ClusterView,
): Promise<{ snapshot: SnapshotResult } | { stop: RunStop }> {
  const { reporter, clock, opts } = ctx;
  const node = snapshotSource(view);
  const refuse = (error: DefragError): { stop: RunStop } => {
    reporter.error(error.describe());
    return {
      stop: {
        kind: "refused",
        error,
        refusals: [{ gate: "snapshot", ...(error.node ? { node: error.node } : {}), message: error.message }],
      },
    };
  };
  if (node === undefined) {
    return refuse(
      new DefragError("refused", "no member answers to take the snapshot from; nothing is defragmented"),
    );
  }
  reporter.info(`taking an etcd snapshot of ${node} into ${store.where} before the first defragment`, {
    node,
  });
  const started = clock.now();
  let writer;
  try {
    writer = await store.create(node);
  } catch (err) {
    const e = DefragError.from(err);
    if (e.kind === "internal") throw e;
    return refuse(
      new DefragError(
        "refused",
        `cannot write the snapshot into ${store.where}: ${e.message}; nothing is defragmented`,
        { hint: e.hint },
      ),
    );
  }
  try {
    await ctx.backend.snapshot(node, (chunk) => writer.write(chunk), {
      timeoutMs: opts.timeoutMs,
      signal: ctx.signal,
    });
    const kept = await writer.commit();
    reporter.info(
      `snapshot ${kept.path}: ${formatBytes(kept.bytes)} from ${node} in ${formatDuration(clock.now() - started)}, etcd's sha256 verified${kept.removed.length > 0 ? `; removed the older ${kept.removed.join(", ")}` : ""}`,
      { node, path: kept.path, bytes: kept.bytes },
    );
    return { snapshot: { node, path: kept.path, bytes: kept.bytes } };
  } catch (err) {
    await writer.abort();
    const e = DefragError.from(err);
    if (e.kind === "internal") throw e;
    return refuse(
      new DefragError("refused", `the snapshot of ${node} failed: ${e.message}; nothing is defragmented`, {
        node,
        hint: e.hint ?? "run again, or without --snapshot-dir to defragment without a snapshot",
      }),
    );
  }
}
