// Every member's defragment feed (Backend.followDefrags), followed from the start of the run to
// its end: "is anybody defragmenting?" is a lookup, and what etcd says arrives as it says it.
//
// Unknown is never quiet. A member's activity is known only while its feed is open and has read
// back everything logged before it opened, and, when that read-back shows no marker at all (a
// busy etcd can log more lines during one defragment than are read back), once the member's own
// Status has answered a call sent after that: etcd answers no Status while it defragments
// (measured on 3.4 to 3.7), so an answer proves that no defragment that started earlier, unseen,
// is still running; any later one is logged and seen. A feed that breaks is unknown until it is
// open and read back again.

import type { Backend } from "../core/backend.js";
import { DefragError, failsEverywhere } from "../core/errors.js";
import type { DefragActivity } from "../core/model.js";
import type { Clock } from "../core/ports.js";

/** How long a broken feed waits before it is opened again. */
const REOPEN_MS = 1000;

export type FeedState =
  /** Being opened; `lastError`: why it broke, when it did (it is opened again every second). */
  | { kind: "opening"; lastError?: DefragError }
  | { kind: "broken"; error: DefragError }
  | {
      kind: "live";
      activity: DefragActivity;
      anchored: boolean;
      /** When it had read back everything logged before it opened (the run's clock). */
      since: number;
      /** When a Status call that the member answered was sent, after `since`. */
      confirmedAt?: number;
    };

/** What a member's feed says now: its activity, or why it is unknown. */
export type Known =
  | { node: string; kind: "quiet"; activity: DefragActivity }
  | {
      node: string;
      kind: "busy";
      activity: DefragActivity;
      since: number | undefined;
      by: "call" | "start-up";
    }
  | { node: string; kind: "unknown"; why: string; error?: DefragError; permanent: boolean };

export class DefragFeeds {
  private readonly states = new Map<string, FeedState>();
  private waiters: (() => void)[] = [];
  private readonly stop = new AbortController();
  private readonly running: Promise<void>[] = [];
  /** Members this run is defragmenting now: a defragment starting there is its own. */
  private readonly mine = new Set<string>();

  constructor(
    private readonly backend: Backend,
    private readonly clock: Clock,
    readonly nodes: readonly string[],
    /** Told as soon as a feed shows a defragment starting that this run did not start. */
    private readonly onOthers: (
      node: string,
      by: "call" | "start-up",
      since: number | undefined,
    ) => void = () => undefined,
  ) {
    for (const node of nodes) this.states.set(node, { kind: "opening" });
  }

  /** Opens every feed (and keeps opening a broken one again) until close(). */
  start(): void {
    for (const node of this.nodes) this.running.push(this.follow(node));
  }

  async close(): Promise<void> {
    this.stop.abort();
    this.notify();
    await Promise.all(this.running);
  }

  private async follow(node: string): Promise<void> {
    const signal = this.stop.signal;
    const stopped = (): boolean => signal.aborted;
    let lastError: DefragError | undefined;
    while (!stopped()) {
      this.set(node, lastError === undefined ? { kind: "opening" } : { kind: "opening", lastError });
      let error: DefragError;
      try {
        for await (const u of this.backend.followDefrags(node, signal)) {
          const was = this.states.get(node);
          const live = was?.kind === "live" ? was : undefined;
          const started = u.activity.inProgress;
          if (live !== undefined && live.activity.inProgress === undefined && started && !this.mine.has(node))
            this.onOthers(node, started.by, started.since);
          this.set(node, {
            kind: "live",
            activity: u.activity,
            anchored: u.anchored,
            since: live?.since ?? this.clock.now(),
            ...(live?.confirmedAt !== undefined ? { confirmedAt: live.confirmedAt } : {}),
          });
          if (live === undefined && !u.anchored) void this.confirm(node);
        }
        if (stopped()) return;
        error = new DefragError("unreachable", "the feed ended", { node });
      } catch (err) {
        if (stopped()) return;
        error = DefragError.from(err);
      }
      this.set(node, { kind: "broken", error });
      lastError = error;
      // A refusal that no retry changes (a role without the right, a bug) stays: the run refuses on it.
      if (failsEverywhere(error)) return;
      await this.clock.sleep(REOPEN_MS, signal).catch(() => undefined);
    }
  }

  /** The second signal for a feed whose read-back shows no marker: a Status answered after it. */
  private async confirm(node: string): Promise<void> {
    const signal = this.stop.signal;
    for (;;) {
      const s = this.states.get(node);
      if (signal.aborted || s?.kind !== "live" || s.anchored || s.confirmedAt !== undefined) return;
      const sent = this.clock.now();
      try {
        await this.backend.status(node, signal);
        this.statusAnswered(node, sent);
        return;
      } catch (err) {
        const e = DefragError.from(err);
        // Nothing awaits this loop: a bug ends the feed (it can never tell), rather than go unhandled.
        if (e.kind === "internal") {
          this.set(node, { kind: "broken", error: e });
          return;
        }
        await this.clock.sleep(REOPEN_MS, signal).catch(() => undefined);
      }
    }
  }

  /** Whether this run is defragmenting `node` now (its own defragment is not someone else's). */
  ours(node: string, defragmenting: boolean): void {
    if (defragmenting) this.mine.add(node);
    else this.mine.delete(node);
  }

  /** A Status call to `node`, sent at `sentAt`, was answered (the run's own readings count too). */
  statusAnswered(node: string, sentAt: number): void {
    const s = this.states.get(node);
    if (s?.kind === "live" && !s.anchored && s.confirmedAt === undefined && sentAt >= s.since)
      this.set(node, { ...s, confirmedAt: sentAt });
  }

  private set(node: string, state: FeedState): void {
    this.states.set(node, state);
    this.notify();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** What one member's feed says now. */
  known(node: string): Known {
    const s = this.states.get(node) ?? { kind: "opening" };
    const signal = this.backend.words.defragSignal;
    if (s.kind === "opening" && s.lastError === undefined)
      return { node, kind: "unknown", why: `${signal} is being opened`, permanent: false };
    if (s.kind === "opening")
      return {
        node,
        kind: "unknown",
        why: `cannot read ${signal} (${s.lastError?.message ?? ""}); opening it again`,
        ...(s.lastError !== undefined ? { error: s.lastError } : {}),
        permanent: false,
      };
    if (s.kind === "broken")
      return {
        node,
        kind: "unknown",
        why: `cannot read ${signal} (${s.error.message})`,
        error: s.error,
        permanent: failsEverywhere(s.error),
      };
    const running = s.activity.inProgress;
    if (running !== undefined)
      return { node, kind: "busy", activity: s.activity, since: running.since, by: running.by };
    if (!s.anchored && s.confirmedAt === undefined)
      return {
        node,
        kind: "unknown",
        why: `what was read of ${signal} does not show whether a defragment is running, and the member has not answered a status since (it answers none while it defragments)`,
        permanent: false,
      };
    return { node, kind: "quiet", activity: s.activity };
  }

  /** When `node`'s raft logged a leader change (etcd's clock), oldest first; empty when unknown. */
  elections(node: string): number[] {
    const s = this.states.get(node);
    return s?.kind === "live" ? (s.activity.elections ?? []) : [];
  }

  /** Every member's. */
  all(): Known[] {
    return this.nodes.map((n) => this.known(n));
  }

  /** The defragments etcd logged as finished on `node` (etcd's clock), oldest first; empty when unknown. */
  finished(node: string): DefragActivity["finished"] {
    const s = this.states.get(node);
    return s?.kind === "live" ? s.activity.finished : [];
  }

  /**
   * Waits until `done()` holds (checked at every change of a feed, and every `stepMs` besides), up
   * to `ms` (then false) or until `signal` aborts (false).
   */
  async waitUntil(
    done: () => boolean,
    opts: { ms: number; stepMs: number; signal?: AbortSignal | undefined },
  ): Promise<boolean> {
    const deadline = this.clock.now() + opts.ms;
    while (!done()) {
      const left = deadline - this.clock.now();
      if (left <= 0 || opts.signal?.aborted === true || this.stop.signal.aborted) return false;
      const tick = new AbortController();
      const signal = opts.signal ? AbortSignal.any([tick.signal, opts.signal]) : tick.signal;
      let wake: () => void = () => undefined;
      const changed = new Promise<void>((resolve) => {
        wake = resolve;
        this.waiters.push(resolve);
      });
      await Promise.race([
        changed,
        this.clock.sleep(Math.min(left, opts.stepMs), signal).catch(() => undefined),
      ]);
      tick.abort();
      this.waiters = this.waiters.filter((w) => w !== wake);
    }
    return true;
  }
}
