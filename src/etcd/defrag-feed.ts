// A member's defragment feed on the etcd backend (Backend.followDefrags): etcd has no log to read
// here, so its etcd_disk_defrag_inflight gauge is read every FEED_POLL_MS (and at once after this
// run's own defragment call ends). The gauge is what etcd says now, whoever started the
// defragment, so every reading is anchored; a defragment finishing shows as one more in the
// duration histogram's count, an election as one more leader change.

import { DefragError } from "../core/errors.js";
import type { DefragActivity, DefragFeedUpdate } from "../core/model.js";
import { DEFRAG_INFLIGHT, type DefragMetrics } from "./metrics.js";

/** How often the gauge is read while the run follows a member. */
export const FEED_POLL_MS = 500;

export type WithoutGauge = "refuse" | "status-only";

export interface GaugeFeedOptions {
  read: (signal: AbortSignal) => Promise<DefragMetrics>;
  /** What to do when the gauge cannot be read (an etcd without it, /metrics not reachable). */
  withoutGauge: WithoutGauge;
  /** Registers a wake-up (the backend's own defragment call ended); returns its removal. */
  onPoke: (wake: () => void) => () => void;
  /** Said once when the feed falls back to the member's Status alone (status-only). */
  onBlind: (why: string) => void;
  now: () => number;
  pollMs?: number;
}

export async function* followDefragGauge(
  node: string,
  signal: AbortSignal,
  opts: GaugeFeedOptions,
): AsyncGenerator<DefragFeedUpdate> {
  let first: DefragMetrics;
  try {
    first = await opts.read(signal);
    if (first.inflight === undefined)
      throw new DefragError(
        "refused",
        `etcd at ${node} does not export ${DEFRAG_INFLIGHT} (etcd before 3.5.10): a defragment someone else starts there cannot be seen`,
        {
          node,
          hint: "upgrade etcd to 3.5.10+ or 3.6+, or run with --without-defrag-gauge status-only to rely on the member answering its Status (etcd answers none while it defragments)",
        },
      );
  } catch (err) {
    const e = DefragError.from(err);
    if (signal.aborted || opts.withoutGauge === "refuse" || e.kind === "internal") throw e;
    opts.onBlind(e.message);
    // Unanchored: the run then takes the member as quiet only once its Status has answered.
    yield { activity: { inProgress: undefined, finished: [] }, anchored: false };
    // Aborted while the update was being taken: an abort event already fired never fires again.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- it changes across the yield
    if (signal.aborted) return;
    await new Promise<void>((resolve) => {
      signal.addEventListener(
        "abort",
        () => {
          resolve();
        },
        { once: true },
      );
    });
    return;
  }
  let prev = first;
  const activity: DefragActivity = {
    inProgress: first.inflight ? { since: undefined, by: "call" } : undefined,
    finished: [],
    elections: [],
  };
  yield { activity: copy(activity), anchored: true };
  for (;;) {
    await pause(opts, signal);
    if (signal.aborted) return;
    const m = await opts.read(signal);
    const at = opts.now();
    let changed = false;
    const ended = m.finishedCount - prev.finishedCount;
    if (ended > 0) {
      const tookMs = ((m.finishedSeconds - prev.finishedSeconds) * 1000) / ended;
      for (let i = 0; i < ended; i += 1) activity.finished.push({ end: at, tookMs: Math.max(0, tookMs) });
      changed = true;
    }
    if (m.leaderChanges > prev.leaderChanges) {
      activity.elections?.push(at);
      changed = true;
    }
    const running = m.inflight === true;
    // Running at both readings with one finished between them: the one running now began since.
    const another = running && activity.inProgress !== undefined && ended > 0;
    if (another || running !== (activity.inProgress !== undefined)) {
      activity.inProgress = running ? { since: at, by: "call" } : undefined;
      changed = true;
    }
    prev = m;
    if (changed) yield { activity: copy(activity), anchored: true };
  }
}

function copy(a: DefragActivity): DefragActivity {
  return {
    inProgress: a.inProgress === undefined ? undefined : { ...a.inProgress },
    finished: a.finished.map((f) => ({ ...f })),
    elections: [...(a.elections ?? [])],
  };
}

/** FEED_POLL_MS, cut short by a poke or the end of the feed. */
function pause(opts: GaugeFeedOptions, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      remove();
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, opts.pollMs ?? FEED_POLL_MS);
    const remove = opts.onPoke(done);
    signal.addEventListener("abort", done, { once: true });
  });
}
