// Holding a real defragment in progress: the member is stopped (SIGSTOP) the moment etcd logs
// that it started, and let go when the test says; and who was blocked when, from etcd's own log.

import { closeSync, openSync, readSync, statSync } from "node:fs";
import { setImmediate as tick } from "node:timers/promises";

import { defragWindows, type DefragWindow } from "../../bench/etcd-log.js";
import type { Harness } from "./harness.js";

/** What a member's etcd log gained since `offset` bytes. */
export function logSince(file: string, offset: number): string {
  const size = statSync(file).size;
  if (size <= offset) return "";
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    return buf.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

export const STARTED = '"msg":"defragmenting"';
export const ENDED = /"msg":"(finished defragmenting directory|defragmented)"/;

/**
 * Stops whichever member (of `among`) etcd logs starting a defragment first after `trigger`,
 * before it finishes. Undefined when every defragment finished before it could be stopped.
 */
export async function stopMidDefragment(
  h: Pick<Harness, "etcd">,
  among: number[],
  trigger: () => void,
): Promise<number | undefined> {
  const offsets = among.map((i) => statSync(h.etcd.members[i]!.logFile).size);
  trigger();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    for (const [k, i] of among.entries()) {
      const text = logSince(h.etcd.members[i]!.logFile, offsets[k]!);
      if (!text.includes(STARTED)) continue;
      h.etcd.pause(i);
      if (!ENDED.test(logSince(h.etcd.members[i]!.logFile, offsets[k]!))) return i;
      h.etcd.resume(i);
      return undefined;
    }
    await tick();
  }
  throw new Error("no member started a defragment within 60 s");
}

/** Every member's defragment windows from etcd's own log since `since` (ms), all members together. */
export function windows(h: Harness, since: number): DefragWindow[] {
  return h.etcd.members.flatMap((m, i) => defragWindows(m.logFile, i, since));
}
