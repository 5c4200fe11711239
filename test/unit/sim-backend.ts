// A simulated cluster on a virtual clock, for the orchestrator's timing rules
// (what happens after a defragment call times out). Integration tests use real
// etcd; this exists because minutes of etcd behaviour must run in milliseconds.

import type { Backend } from "../../src/core/backend.js";
import { DefragError } from "../../src/core/errors.js";
import type { MemberAlarm, MemberInfo, MemberStatus } from "../../src/core/model.js";

export interface SimMember {
  id: bigint;
  node: string;
  dbSize: number;
  inUse: number;
  /** How long etcd takes to defragment this member (virtual ms). */
  defragMs: number;
}

export class SimCluster implements Backend {
  now = 0;
  leader: bigint;
  alarms_: MemberAlarm[] = [];
  /** Every real defragment on the "server": [node, start, end]. */
  readonly windows: [string, number, number][] = [];
  readonly calls: string[] = [];
  private readonly busyUntil = new Map<string, number>();
  private readonly pending = new Map<string, number>();

  constructor(readonly sim: SimMember[]) {
    this.leader = sim[0]?.id ?? 0n;
  }

  clock = {
    now: (): number => this.now,
    sleep: async (ms: number): Promise<void> => {
      this.now += ms;
      await Promise.resolve();
    },
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
      })),
    );
  }

  status(node: string): Promise<MemberStatus> {
    this.calls.push(`EtcdStatus ${node}`);
    const m = this.member(node);
    this.settle(m);
    return Promise.resolve({
      memberId: m.id,
      leaderId: this.leader,
      dbSize: m.dbSize,
      dbSizeInUse: m.inUse,
      raftTerm: 2n,
      raftIndex: 100n,
      raftAppliedIndex: 100n,
      isLearner: false,
      protocolVersion: "3.5.0",
      storageVersion: "3.5.0",
      errors: [],
    });
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
    await Promise.resolve();
    if (end - this.now > opts.timeoutMs) {
      this.now += opts.timeoutMs;
      throw new DefragError("timeout", "EtcdDefragment did not answer in time", { node });
    }
    this.now = end;
    this.settle(m);
  }

  forfeitLeadership(node: string): Promise<string> {
    this.calls.push(`EtcdForfeitLeadership ${node}`);
    const m = this.member(node);
    if (m.id !== this.leader) return Promise.resolve("");
    const next = this.sim.find((x) => x.id !== m.id);
    this.leader = next?.id ?? this.leader;
    return Promise.resolve(`cp-${this.leader}`);
  }

  disarmAlarms(): Promise<MemberAlarm[]> {
    this.calls.push("EtcdAlarmDisarm");
    const was = this.alarms_;
    this.alarms_ = [];
    return Promise.resolve(was);
  }

  close(): void {
    // Nothing to release.
  }
}
