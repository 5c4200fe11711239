// The data check, where the backend can make it (etcd's HashKV; the Talos API has none): before
// the first defragment every member must hold the same data at one revision, and after the last
// every member must still hash the same at that revision. A defragment rewrites the database
// file; it must never change what is in it. Members that already differ are refused (a
// defragment fixes nothing there); a difference after the run fails it loudly.

import { DefragError } from "../core/errors.js";
import type { MemberHashes } from "../core/model.js";
import type { HashCheck, RunStop } from "../core/result.js";
import type { RunContext } from "./types.js";

function differ(h: MemberHashes): boolean {
  return new Set(h.hashes.map((x) => x.hash)).size > 1;
}

function listed(h: MemberHashes): string {
  return h.hashes.map((x) => `${x.node} ${x.hash}`).join(", ");
}

/** Before the first defragment: the baseline, none when the backend cannot, or a refusal. */
export async function hashesBefore(
  ctx: RunContext,
  nodes: readonly string[],
): Promise<{ check?: HashCheck } | { stop: RunStop }> {
  let read: MemberHashes | { unsupported: string };
  try {
    read = await ctx.backend.hashes(nodes, undefined, ctx.signal);
  } catch (err) {
    const e = DefragError.from(err);
    if (e.kind === "internal") throw e;
    return refuse(
      ctx,
      `cannot compare the members' data before the first defragment: ${e.message}`,
      e.node,
      e.hint,
      // A credential that may not hash may not defragment either (etcd asks the root role of both).
      e.kind === "permission" ? "permission" : "data",
    );
  }
  if ("unsupported" in read) return {};
  if (differ(read))
    return refuse(
      ctx,
      `the members' data already differ at revision ${read.revision} (HashKV: ${listed(read)}): a defragment would not mend that, and none is started`,
      undefined,
      "find the member that differs (etcd's corruption check, its log) and replace it from a healthy member or a snapshot before defragmenting",
    );
  const hash = read.hashes[0]?.hash ?? 0;
  ctx.reporter.info(
    `data check: all ${read.hashes.length} members hash ${hash} at revision ${read.revision} (HashKV); checked again after the last defragment`,
    { revision: read.revision.toString(), hash },
  );
  return { check: { revision: read.revision.toString(), before: hash, outcome: "unchecked" } };
}

/**
 * After the last defragment: every member at the baseline's revision again; when etcd has compacted
 * it away meanwhile (Kubernetes compacts every 5 minutes), every member at one newer revision. The
 * check's outcome, and an error when the data differ.
 */
export async function hashesAfter(
  ctx: RunContext,
  check: HashCheck,
  nodes: readonly string[],
): Promise<{ check: HashCheck; error?: DefragError }> {
  const revision = BigInt(check.revision);
  let read: MemberHashes | { unsupported: string };
  try {
    read = await ctx.backend.hashes(nodes, revision);
  } catch (err) {
    const e = DefragError.from(err);
    if (e.kind === "internal") throw e;
    ctx.reporter.warn(`data check after the run could not be made: ${e.describe()}`);
    return { check: { ...check, outcome: "unchecked" } };
  }
  if ("unsupported" in read) return { check };
  // A newer revision than asked: etcd compacted the baseline's away meanwhile.
  const same = read.revision === revision;
  const hash = read.hashes[0]?.hash ?? 0;
  const after = { revision: read.revision.toString(), hash, sameRevision: same };
  if (differ(read) || (same && hash !== check.before)) {
    const error = new DefragError(
      "etcd",
      same
        ? `the data changed under the run: at revision ${check.revision} the members hashed ${check.before} before the first defragment and now ${listed(read)}`
        : `the members' data differ after the run at revision ${read.revision}: ${listed(read)}`,
      {
        hint: "stop writing to this cluster's odd member: compare the members with etcdctl endpoint hashkv --cluster, read etcd's logs, and restore it from a healthy member or the snapshot",
      },
    );
    ctx.reporter.error(error.describe());
    return { check: { ...check, after, outcome: "differ" }, error };
  }
  ctx.reporter.info(
    same
      ? `data check: every member still hashes ${hash} at revision ${check.revision}: the defragments changed no data`
      : `data check: revision ${check.revision} was compacted during the run; every member hashes ${hash} at revision ${read.revision}`,
    { revision: read.revision.toString(), hash },
  );
  return { check: { ...check, after, outcome: same ? "same" : "agree" } };
}

function refuse(
  ctx: RunContext,
  message: string,
  node: string | undefined,
  hint?: string,
  gate: "data" | "permission" = "data",
): { stop: RunStop } {
  const error = new DefragError("refused", message, { node, hint });
  ctx.reporter.error(`refused: ${error.describe()}`, { gate });
  return {
    stop: {
      kind: "refused",
      error,
      refusals: [{ gate, message, ...(node !== undefined ? { node } : {}) }],
    },
  };
}
