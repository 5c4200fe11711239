// The run's one view of the cluster, and the one owner of every reading of it: the member list,
// statuses and alarms (each view with the time it was read), every member's defragment feed
// (followed for the whole run: src/run/feeds.ts), and each member's configuration and quota
// (read once, resolved in one place: core/quota.ts). The steps ask it questions; nothing else
// keeps a reading from one step to the next.
//
// The freshness rule, the only one: a view serves a decision while it is younger than FRESH_MS,
// else it is read again. The feeds are live (they are as fresh as etcd's log) and unknown when
// they are not. A configuration serves the whole run: etcd reads its flags only when it starts.

import type { Backend } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import type { ClusterView, DataDisk, LifecycleReading } from "../core/model.js";
import type { Clock } from "../core/ports.js";
import type { MemberConfigs } from "../core/quota.js";
import { raised, type RaisedAlarm } from "../core/result.js";
import { DefragFeeds } from "./feeds.js";
import { readMemberConfigs } from "./member-config.js";
import { observeCluster } from "./observe.js";

/** How long a view of the statuses and alarms may serve a decision. */
export const FRESH_MS = 1000;

export class LiveCluster {
  readonly nodes: readonly string[];
  private last: { view: ClusterView; at: number };
  private reading: Promise<ClusterView> | undefined;
  private lastLifecycles: { readings: Promise<LifecycleReading[]>; at: number } | undefined;
  /** Each node's data disk as last asked for (the reading in flight counts: asked once, used by all). */
  private readonly disks = new Map<
    string,
    { read: Promise<{ disk: DataDisk } | { unsupported: string }>; at: number }
  >();
  /** The leader and the highest raft term of the last reading, and when a reading first showed them change. */
  private raft: { leader: bigint | undefined; term: bigint; changedAt: number | undefined };
  /** What was said once per run (a node whose platform does not report something). */
  private readonly said = new Set<string>();

  private constructor(
    private readonly backend: Backend,
    private readonly clock: Clock,
    /** The first view, as read when the run started. */
    readonly first: ClusterView,
    at: number,
    readonly feeds: DefragFeeds,
    readonly configs: MemberConfigs,
  ) {
    this.nodes = first.nodes.map((n) => n.node);
    this.last = { view: first, at };
    this.raft = { ...raftOf(first), changedAt: undefined };
  }

  /**
   * The first reading: the member list, the alarms and the statuses at once; as soon as the nodes
   * are known, their feeds open and their configurations are read beside the statuses. Rejects as
   * observeCluster does (nothing is left open then).
   */
  static async open(
    backend: Backend,
    clock: Clock,
    opts: {
      nodes: readonly string[];
      quotaBytes: number | undefined;
      signal: AbortSignal;
      /** Someone else's defragment began on `node`, as its feed showed it. */
      onOthers?: (node: string, by: "call" | "start-up", since: number | undefined) => void;
    },
  ): Promise<LiveCluster> {
    let feeds: DefragFeeds | undefined;
    let configs: Promise<MemberConfigs> | undefined;
    const at = clock.now();
    try {
      const first = await observeCluster(backend, {
        nodes: opts.nodes,
        signal: opts.signal,
        onNodes: (nodes) => {
          feeds = new DefragFeeds(backend, clock, nodes, opts.onOthers);
          feeds.start();
          configs = readMemberConfigs(backend, nodes, opts);
          // Awaited below; until then a rejection (a bug, a stop) must not count as unhandled.
          configs.catch(() => undefined);
        },
      });
      if (feeds === undefined || configs === undefined) throw new Error("the nodes were never known");
      return new LiveCluster(backend, clock, first, at, feeds, await configs);
    } catch (err) {
      await feeds?.close();
      throw err;
    }
  }

  /** A view to decide on: the last one while it is fresh (FRESH_MS), else a new reading. */
  view(): Promise<ClusterView> {
    if (this.clock.now() - this.last.at < FRESH_MS) return Promise.resolve(this.last.view);
    // A reading in flight is the fresh one: asked once, used by every caller.
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  /** A new reading, now (to watch something change: health, leadership, catching up). */
  async read(): Promise<ClusterView> {
    const at = this.clock.now();
    const view = await observeCluster(this.backend, { nodes: this.nodes });
    this.last = { view, at };
    const now = raftOf(view);
    const moved = (now.leader !== undefined && now.leader !== this.raft.leader) || now.term > this.raft.term;
    if (now.leader !== undefined) this.raft = { ...now, changedAt: moved ? at : this.raft.changedAt };
    // A member that answered a Status is not defragmenting (the feeds' second signal).
    for (const n of view.nodes) if (n.ok) this.feeds.statusAnswered(n.node, at);
    return view;
  }

  /**
   * Every node's lifecycle (an upgrade, a reboot, up and serving), read in parallel; a reading
   * serves while younger than FRESH_MS, like a view.
   */
  lifecycles(): Promise<LifecycleReading[]> {
    const now = this.clock.now();
    if (this.lastLifecycles !== undefined && now - this.lastLifecycles.at < FRESH_MS)
      return this.lastLifecycles.readings;
    const readings = Promise.all(
      this.nodes.map(async (node): Promise<LifecycleReading> => {
        try {
          const r = await this.backend.nodeLifecycle(node);
          return "lifecycle" in r ? { node, lifecycle: r.lifecycle } : { node, unsupported: r.unsupported };
        } catch (err) {
          const e = DefragError.from(err);
          if (e.kind === "internal") throw err;
          return { node, error: e.message };
        }
      }),
    );
    this.lastLifecycles = { readings, at: now };
    return readings;
  }

  /**
   * The space on `node`'s data filesystem (Backend.dataDisk), by the freshness rule; asking early
   * (before the other checks of a member) starts the reading, and the check right before the member
   * uses it while it is fresh.
   */
  disk(node: string, signal?: AbortSignal): Promise<{ disk: DataDisk } | { unsupported: string }> {
    const now = this.clock.now();
    const last = this.disks.get(node);
    if (last !== undefined && now - last.at < FRESH_MS) return last.read;
    const read = this.backend.dataDisk(node, signal);
    // Asked early and awaited later: a rejection before then is not unhandled.
    read.catch(() => undefined);
    this.disks.set(node, { read, at: now });
    return read;
  }

  /** True the first time `key` is asked about in this run: for what is said once. */
  firstTime(key: string): boolean {
    if (this.said.has(key)) return false;
    this.said.add(key);
    return true;
  }

  /**
   * The last leader change the run knows of, by our clock: one its readings showed (a new leader or
   * a higher raft term), or one a member's etcd logged (etcd's clock, taken as ours). Undefined: none.
   */
  lastElection(): { at: number; seen: "readings" | "log"; node?: string } | undefined {
    let last: { at: number; seen: "readings" | "log"; node?: string } | undefined =
      this.raft.changedAt === undefined ? undefined : { at: this.raft.changedAt, seen: "readings" };
    for (const node of this.nodes) {
      const at = this.feeds.elections(node).at(-1);
      if (at !== undefined && (last === undefined || at > last.at)) last = { at, seen: "log", node };
    }
    return last;
  }

  /** The alarms raised as last read, for the result. */
  alarmsRaised(): RaisedAlarm[] {
    return this.last.view.alarms.map(raised);
  }

  /**
   * How long ago `node`'s etcd logged its last finished defragment, by etcd's clock against ours (never
   * below 0); undefined when its feed shows none (none in the tail, or the feed is not live).
   */
  lastDefragmentAgoMs(node: string): number | undefined {
    const last = this.feeds.finished(node).at(-1);
    return last === undefined ? undefined : Math.max(0, this.clock.now() - last.end);
  }

  /** The quota that applies to `node` (core/quota.ts). */
  quota(node: string): number {
    const q = this.configs.quotas.byNode.get(node);
    if (q === undefined) throw new Error(`no quota was resolved for ${node}`);
    return q.bytes;
  }

  close(): Promise<void> {
    return this.feeds.close();
  }
}

/** The leader the members agree on (undefined when they do not) and the highest raft term of a view. */
function raftOf(view: ClusterView): { leader: bigint | undefined; term: bigint } {
  let term = 0n;
  const leaders = new Set<bigint>();
  for (const n of view.nodes) {
    if (!n.ok) continue;
    if (n.status.raftTerm > term) term = n.status.raftTerm;
    if (n.status.leaderId !== 0n) leaders.add(n.status.leaderId);
  }
  return { leader: leaders.size === 1 ? [...leaders][0] : undefined, term };
}
