// A member's defragment feed over the Talos API (Backend.followDefrags): its etcd log followed
// (Logs, `follow` with a tail) and parsed as it arrives (core/etcd-log.ts).
//
// When is the tail read? The stream sends the tail and then new lines with nothing between them,
// so beside it one more call reads the log's last line as it is now (a tail of 1). Once that line
// has come through the followed stream, everything logged before that call has been read: the
// state is known from then on, and only then is it given out.

import { DefragError } from "../core/errors.js";
import { EtcdLogTracker } from "../core/etcd-log.js";
import type { DefragFeedUpdate } from "../core/model.js";
import type { TalosClient } from "./client.js";
import { Inbox } from "./inbox.js";

/**
 * How much of etcd's log is read back when the stream opens: enough to reach back past the noise a
 * busy member logs while blocked (slow-request warnings) in most cases; when it does not, the run
 * confirms the member quiet another way (its Status answers: README, Design).
 */
export const ETCD_LOG_TAIL_LINES = 500;

type Item = { bytes: Uint8Array } | { mark: string };

export async function* followDefrags(
  client: Pick<TalosClient, "etcdLog" | "followEtcdLog">,
  node: string,
  signal: AbortSignal,
  tailLines = ETCD_LOG_TAIL_LINES,
): AsyncGenerator<DefragFeedUpdate> {
  const inbox = new Inbox<Item>();
  const stop = new AbortController();
  const both = AbortSignal.any([signal, stop.signal]);
  client
    .followEtcdLog(
      node,
      tailLines,
      (bytes) => {
        inbox.push({ bytes });
      },
      both,
    )
    .then(
      () => {
        inbox.end();
      },
      (err: unknown) => {
        inbox.end(signal.aborted ? undefined : err);
      },
    );
  client.etcdLog(node, 1, both).then(
    (text) => {
      inbox.push({ mark: lastLine(text) });
    },
    (err: unknown) => {
      inbox.end(signal.aborted ? undefined : err);
    },
  );

  const tracker = new EtcdLogTracker();
  const decoder = new TextDecoder();
  let partial = "";
  // Lines seen before the mark is known (the tail, at most), to find it when it came first.
  let seen: Set<string> | undefined = new Set();
  let mark: string | undefined;
  try {
    for await (const item of inbox) {
      let changed = false;
      let synced = seen === undefined;
      if ("mark" in item) {
        mark = item.mark;
        synced = mark === "" || seen?.has(mark) === true;
      } else {
        const text = partial + decoder.decode(item.bytes, { stream: true });
        const lines = text.split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          if (tracker.push(line)) changed = true;
          if (seen === undefined) continue;
          if (mark !== undefined && line.trim() === mark) synced = true;
          else seen.add(line.trim());
        }
      }
      if (seen !== undefined && synced) {
        seen = undefined;
        changed = true;
      }
      if (seen === undefined && changed) yield { activity: tracker.activity(), anchored: tracker.anchored };
    }
  } finally {
    stop.abort();
  }
  if (!signal.aborted) throw new DefragError("unreachable", "the etcd log stream ended", { node });
}

function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim());
  return lines.filter((l) => l !== "").at(-1) ?? "";
}
