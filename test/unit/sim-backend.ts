// A simulated cluster on a virtual clock, for the orchestrator's timing rules
// (what happens after a defragment call times out). Integration tests use real
// etcd; this exists because minutes of etcd behaviour must run in milliseconds.

import { createHash } from "node:crypto";

import type { Backend, BackendWords, Permission, Permissions } from "../../src/core/backend.js";
import { DefragError } from "../../src/core/errors.js";
import type { MemberConfig } from "../../src/core/member-config.js";
import type {
  DataDisk,
  NodeLifecycle,
  DefragActivity,
  DefragFeedUpdate,
  MemberAlarm,
  MemberHashes,
  MemberInfo,
  MemberStatus,
} from "../../src/core/model.js";
import { TALOS_WORDS } from "../../src/talos/words.js";
import type { Clock } from "../../src/core/ports.js";

export interface SimMember {
  id: bigint;
  node: string;
  dbSize: number;
  inUse: number;
  /** How long etcd takes to defragment this member (virtual ms). */
  defragMs: number;
  /** The etcd version its status reports (EtcdMemberStatus.protocol_version); 3.6.16 when unset. */
  version?: string;
  /** How many entries its applied index trails the leader's, at a virtual time; 0 when unset. */
  appliedBehind?: (now: number) => number;
  /** What the member is configured with (Backend.memberConfig); default: nothing set. */
  config?: MemberConfig;
}

export class SimCluster implements Backend {
  /** It stands in for a Talos cluster: Talos's words, but for how a member is inspected. */
  readonly words: BackendWords = { ...TALOS_WORDS, inspect: (node) => `sim status ${node}` };
  now = 0;
  /** How long a Status call waits for a member that is defragmenting (etcd answers none meanwhile). */
  callTimeoutMs = 10_000;
  leader: bigint;
  /** The raft term every member reports; a test raises it for an election. */
  term = 2n;
  alarms_: MemberAlarm[] = [];
  /** Every real defragment on the "server": [node, start, end]. */
  readonly windows: [string, number, number][] = [];
  readonly calls: string[] = [];
  private readonly busyUntil = new Map<string, number>();
  private readonly pending = new Map<string, number>();

  constructor(readonly sim: SimMember[]) {
    this.leader = sim[0]?.id ?? 0n;
  }

  /** Like etcd's API: HashKV and compaction answered (the Talos API has neither). */
  hashesSupported = false;
  /** Like etcd's MoveLeader: the first preferred member takes over (Talos lets etcd choose). */
  choosesLeader = false;
  /** What the run passed as preferred new leaders, per call. */
  readonly preferred: bigint[][] = [];
  revision = 100n;
  compactRevision = 1n;
  /** A member's HashKV at a revision; a test replaces it to make data differ. */
  hashOf: (node: string, revision: bigint) => number = (_node, revision) => Number(revision % 1000n) + 7;

  /** What the simulated credential may do; everything by default. */
  moveLeadership: Permission = { allowed: true };
  defragmentPermission: Permission = { allowed: true };

  /** Timers on the virtual clock: they fire, in order, as virtual time passes their due time. */
  private readonly timers: { id: number; due: number; every?: number; fn: () => void }[] = [];
  private nextTimer = 0;

  /**
   * Moves virtual time to `to`, firing every timer due on the way at its own time;
   * stops early (at that timer's time) when a timer aborts `signal`.
   */
  advanceTo(to: number, signal?: AbortSignal): void {
    for (;;) {
      if (signal?.aborted) return;
      const next = this.timers.filter((t) => t.due <= to).sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (next === undefined) break;
      this.now = Math.max(this.now, next.due);
      if (next.every === undefined) this.timers.splice(this.timers.indexOf(next), 1);
      else next.due += next.every;
      next.fn();
      this.notifyFeeds();
    }
    this.now = Math.max(this.now, to);
    this.notifyFeeds();
  }

  /** Wakes every followed feed to look again (time passed, a defragment started). */
  private notifyFeeds(): void {
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    for (const s of subscribers) s();
  }

  private readonly subscribers = new Set<() => void>();

  private addTimer(ms: number, fn: () => void, every?: number): () => void {
    const timer = { id: this.nextTimer++, due: this.now + ms, fn, ...(every !== undefined ? { every } : {}) };
    this.timers.push(timer);
    return () => {
      const i = this.timers.indexOf(timer);
      if (i >= 0) this.timers.splice(i, 1);
    };
  }

  /** Timers still scheduled (a leak if any remain after a run). */
  get pendingTimers(): number {
    return this.timers.length;
  }

  clock: Clock = {
    now: (): number => this.now,
    sleep: async (ms: number, signal?: AbortSignal): Promise<void> => {
      signal?.throwIfAborted();
      this.advanceTo(this.now + ms);
      // Let every feed take in what changed meanwhile, as a real stream would have delivered it.
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
    every: (ms, fn) => this.addTimer(ms, fn, ms),
    after: (ms, fn) => this.addTimer(ms, fn),
  };

  private member(node: string): SimMember {
    const m = this.sim.find((x) => x.node === node);
    if (!m) throw new DefragError("unreachable", `no such node ${node}`, { node });
    return m;
  }

  private settle(m: SimMember): void {
    const end = this.pending.get(m.node);
    if (end !== undefined && this.now >= end) {
      m.dbSize = m.inUse;
      this.pending.delete(m.node);
    }
  }

  members(): Promise<MemberInfo[]> {
    this.calls.push("EtcdMemberList");
    return Promise.resolve(
      this.sim.map((m) => ({
        id: m.id,
        name: `cp-${m.id}`,
        peerUrls: [`http://${m.node}:2380`],
        clientUrls: [],
        isLearner: false,
        node: m.node,
      })),
    );
  }

  async status(node: string): Promise<MemberStatus> {
    this.calls.push(`EtcdStatus ${node}`);
    const m = this.member(node);
    // etcd answers no Status while the member defragments (measured on 3.4 to 3.7).
    const busy = this.windows.filter((w) => w[0] === node && w[1] <= this.now && this.now < w[2]);
    const end = Math.max(0, ...busy.map((w) => w[2]));
    if (busy.length > 0) {
      if (end - this.now > this.callTimeoutMs) {
        this.advanceTo(this.now + this.callTimeoutMs);
        await Promise.resolve();
        throw new DefragError("timeout", "EtcdStatus did not answer in time", { node });
      }
      this.advanceTo(end);
      // The feeds take in the end (etcd logs it as the member answers again).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.settle(m);
    return {
      memberId: m.id,
      leaderId: this.leader,
      dbSize: m.dbSize,
      dbSizeInUse: m.inUse,
      raftTerm: this.term,
      raftIndex: 100n,
      raftAppliedIndex: 100n - BigInt(m.id === this.leader ? 0 : (m.appliedBehind?.(this.now) ?? 0)),
      isLearner: false,
      protocolVersion: m.version ?? "3.6.16",
      storageVersion: "3.6.0",
      errors: [],
    };
  }

  alarms(): Promise<MemberAlarm[]> {
    return Promise.resolve([...this.alarms_]);
  }

  async defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    this.calls.push(`EtcdDefragment ${node}`);
    const m = this.member(node);
    // etcd runs one defragment at a time per member: a second one queues behind the first.
    const start = Math.max(this.now, this.busyUntil.get(node) ?? 0);
    const end = start + m.defragMs;
    this.busyUntil.set(node, end);
    this.pending.set(node, end);
    this.windows.push([node, start, end]);
    this.notifyFeeds();
    await Promise.resolve();
    const deadline = this.now + opts.timeoutMs;
    this.advanceTo(Math.min(end, deadline), opts.signal);
    // Like the real client: our own cancellation or deadline ends the call, not etcd's defragment.
    if (opts.signal?.aborted) throw new DefragError("aborted", "EtcdDefragment was cancelled", { node });
    if (end > deadline) throw new DefragError("timeout", "EtcdDefragment did not answer in time", { node });
    this.settle(m);
  }

  /** Someone else (a person, another run, etcd at start-up) defragments `node` from now on. */
  startExternal(node: string, durationMs: number, by: "call" | "start-up" = "call"): void {
    const start = Math.max(this.now, this.busyUntil.get(node) ?? 0);
    this.busyUntil.set(node, start + durationMs);
    this.pending.set(node, start + durationMs);
    this.windows.push([node, start, start + durationMs]);
    this.externalBy.set(node, by);
    this.notifyFeeds();
  }

  private readonly externalBy = new Map<string, "call" | "start-up">();
  /** Nodes whose log cannot be read. */
  unreadableLogs = new Set<string>();

  /** Nodes whose log may not be read (a role without Logs): their feed is refused. */
  deniedLogs = new Set<string>();
  /** Nodes whose log stream is broken: a feed breaks, and cannot open, while the node is here. */
  brokenLogs = new Set<string>();
  /**
   * Nodes whose log, read back when a feed opens, shows no marker: a defragment running then
   * shows only through the member's Status, which does not answer until it ends.
   */
  unanchoredTails = new Set<string>();

  /** etcd's log as the simulation knows it: every window on the node that has started. */
  private activityOf(node: string, hide: boolean): DefragActivity {
    this.settle(this.member(node));
    const mine = this.windows.filter((w) => w[0] === node && w[1] <= this.now);
    const running = mine.find((w) => this.now < w[2]);
    return {
      inProgress:
        running === undefined || hide
          ? undefined
          : { since: running[1], by: this.externalBy.get(node) ?? "call" },
      finished: mine.filter((w) => w[2] <= this.now).map((w) => ({ end: w[2], tookMs: w[2] - w[1] })),
    };
  }

  async *followDefrags(node: string, signal: AbortSignal): AsyncGenerator<DefragFeedUpdate> {
    this.calls.push(`Logs ${node}`);
    await Promise.resolve();
    if (this.deniedLogs.has(node)) throw new DefragError("permission", "Logs was denied", { node });
    // A window already running when the feed opens stays hidden while its start is out of the tail.
    const hidden = this.unanchoredTails.has(node)
      ? this.windows.find((w) => w[0] === node && w[1] <= this.now && this.now < w[2])
      : undefined;
    let last = "";
    for (;;) {
      if (signal.aborted) return;
      if (this.brokenLogs.has(node))
        throw new DefragError("unreachable", "Logs via sim: the connection broke during the call", { node });
      const hide = hidden !== undefined && this.now < hidden[2];
      const activity = this.activityOf(node, hide);
      const anchored =
        hidden === undefined ? !this.unanchoredTails.has(node) || activity.finished.length > 0 : !hide;
      const key = JSON.stringify({ activity, anchored });
      if (key !== last) {
        last = key;
        yield { activity, anchored };
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.subscribers.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
  }

  /** Breaks every open feed of `node` now (and until `brokenLogs` no longer holds it). */
  breakLog(node: string): void {
    this.brokenLogs.add(node);
    this.notifyFeeds();
  }

  /** Nodes whose snapshot fails halfway (after some bytes were written). */
  failingSnapshots = new Set<string>();

  /** A snapshot as etcd streams it: the "database" (dbSizeInUse bytes, capped small), then its sha256. */
  async snapshot(node: string, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    this.calls.push(`EtcdSnapshot ${node}`);
    const m = this.member(node);
    const db = Buffer.alloc(Math.min(64 * 1024, m.inUse), m.node);
    await write(db.subarray(0, db.length / 2));
    if (this.failingSnapshots.has(node))
      throw new DefragError("unreachable", "EtcdSnapshot via sim: the connection broke during the call", {
        node,
      });
    await write(db.subarray(db.length / 2));
    await write(createHash("sha256").update(db).digest());
  }

  /** Nodes whose configuration cannot be read (an older Talos, a role that may not read it). */
  unreadableConfigs = new Set<string>();

  memberConfig(node: string): Promise<MemberConfig> {
    this.calls.push(`MemberConfig ${node}`);
    if (this.unreadableConfigs.has(node))
      return Promise.reject(new DefragError("permission", "State.Get was denied", { node }));
    return Promise.resolve(this.member(node).config ?? { startupDefrag: [] });
  }

  /**
   * Each node's lifecycle (Backend.nodeLifecycle), as Talos reports it; a node not set here is
   * RUNNING and ready. A schedule of [from, to, lifecycle] on the virtual clock: an upgrade or a
   * reboot that starts and ends while the run goes on.
   */
  lifecycleWindows: [string, number, number, NodeLifecycle][] = [];
  /** Nodes whose platform does not report their lifecycle (an older Talos). */
  lifecycleUnsupported = new Set<string>();

  nodeLifecycle(node: string): Promise<{ lifecycle: NodeLifecycle } | { unsupported: string }> {
    this.calls.push(`MachineStatus ${node}`);
    if (this.lifecycleUnsupported.has(node))
      return Promise.resolve({ unsupported: `sim on ${node} does not report its machine status` });
    const w = this.lifecycleWindows.find((x) => x[0] === node && x[1] <= this.now && this.now < x[2]);
    return Promise.resolve({
      lifecycle: w?.[3] ?? { stage: "RUNNING", working: true, ready: true, unmet: [] },
    });
  }

  /** Each node's available bytes on its data filesystem (Backend.dataDisk); a node not set has 100 GiB. */
  diskAvailable = new Map<string, number>();
  /** Nodes whose platform does not report the space (Talos 1.14 and older). */
  diskUnsupported = new Set<string>();

  dataDisk(node: string): Promise<{ disk: DataDisk } | { unsupported: string }> {
    this.calls.push(`Statfs ${node}`);
    if (this.diskUnsupported.has(node))
      return Promise.resolve({ unsupported: `sim on ${node} does not report its free space` });
    return Promise.resolve({
      disk: {
        path: "/var/lib/etcd",
        sizeBytes: 200 * 1024 ** 3,
        availableBytes: this.diskAvailable.get(node) ?? 100 * 1024 ** 3,
      },
    });
  }

  forfeitLeadership(node: string, opts: { prefer: readonly bigint[] }): Promise<string> {
    this.calls.push(`EtcdForfeitLeadership ${node}`);
    this.preferred.push([...opts.prefer]);
    const m = this.member(node);
    if (m.id !== this.leader) return Promise.resolve("");
    const choice = this.choosesLeader ? opts.prefer[0] : undefined;
    const next = this.sim.find((x) => x.id !== m.id && (choice === undefined || x.id === choice));
    this.leader = next?.id ?? this.leader;
    return Promise.resolve(`cp-${this.leader}`);
  }

  disarmNospace(): Promise<MemberAlarm[]> {
    this.calls.push("EtcdAlarmDisarm");
    const was = this.alarms_.filter((a) => a.alarm === "NOSPACE");
    this.alarms_ = this.alarms_.filter((a) => a.alarm !== "NOSPACE");
    return Promise.resolve(was);
  }

  permissions(): Promise<Permissions> {
    return Promise.resolve({ defragment: this.defragmentPermission, moveLeadership: this.moveLeadership });
  }

  /**
   * Each member's HashKV: its `hash` (a test changes one to simulate data that differ), at the
   * revision asked, else `revision`. Unsupported unless `hashesSupported` (as on Talos).
   */
  hashes(nodes: readonly string[], revision?: bigint): Promise<MemberHashes | { unsupported: string }> {
    this.calls.push(`HashKV ${revision ?? "current"}`);
    if (!this.hashesSupported) return Promise.resolve({ unsupported: "the simulation has no HashKV" });
    const at = revision ?? this.revision;
    return Promise.resolve({
      revision: at,
      compactRevision: this.compactRevision,
      hashes: nodes.map((node) => ({ node, hash: this.hashOf(node, at) })),
    });
  }

  compact(): Promise<{ revision: bigint } | { unsupported: string }> {
    this.calls.push("Compact");
    if (!this.hashesSupported) return Promise.resolve({ unsupported: "the simulation cannot compact" });
    this.compactRevision = this.revision;
    return Promise.resolve({ revision: this.revision });
  }

  close(): void {
    // Nothing to release.
  }
}
