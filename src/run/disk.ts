// Room on the disk: right before a member's defragment, the filesystem holding its data must have
// space for the copy bbolt writes (core/gates.ts checkDisk). Without it the member is skipped with the
// reason (gate disk) and the run goes on: a defragment that fills the disk stops etcd, not just itself.
// A platform that does not report the space is said once per node, and the member is defragmented.

import { DefragError } from "../core/errors.js";
import { checkDisk, type GateFailure } from "../core/gates.js";
import type { MemberStatus } from "../core/model.js";
import type { RunContext } from "./types.js";

/** Undefined when there is room (or the platform does not say), else why the member is skipped. */
export async function noRoomFor(
  ctx: RunContext,
  node: string,
  status: Pick<MemberStatus, "dbSizeInUse">,
): Promise<GateFailure | undefined> {
  let read;
  try {
    read = await ctx.live.disk(node, ctx.signal);
  } catch (err) {
    const e = DefragError.from(err);
    if (e.kind === "internal" || e.kind === "aborted") throw err;
    return { gate: "disk", node, message: `the free space on ${node} cannot be read: ${e.message}` };
  }
  if ("unsupported" in read) {
    // A reason that names no node holds for every node (etcd's API): said once for all.
    const each = read.unsupported.includes(node);
    if (ctx.live.firstTime(`disk ${each ? node : read.unsupported}`))
      ctx.reporter[each ? "warn" : "info"](
        `${read.unsupported}: whether ${each ? node : "a member"} has room for its defragment's copy cannot be checked`,
        each ? { node } : {},
      );
    return undefined;
  }
  return checkDisk(node, status, read.disk);
}
