// The Backend implemented over the Talos API.

import type { Backend } from "../core/backend.js";
import type { MemberAlarm, MemberInfo, MemberStatus } from "../core/model.js";
import type { TalosClient } from "./client.js";

export class TalosBackend implements Backend {
  constructor(private readonly client: TalosClient) {}

  async members(signal?: AbortSignal): Promise<MemberInfo[]> {
    const members = await this.client.memberList(signal);
    return members.map((m) => ({
      id: m.id,
      name: m.hostname,
      peerUrls: [...m.peerUrls],
      clientUrls: [...m.clientUrls],
      isLearner: m.isLearner,
    }));
  }

  async status(node: string, signal?: AbortSignal): Promise<MemberStatus> {
    const s = await this.client.status(node, signal);
    return {
      memberId: s.memberId,
      leaderId: s.leader,
      dbSize: Number(s.dbSize),
      dbSizeInUse: Number(s.dbSizeInUse),
      raftTerm: s.raftTerm,
      raftIndex: s.raftIndex,
      raftAppliedIndex: s.raftAppliedIndex,
      isLearner: s.isLearner,
      protocolVersion: s.protocolVersion,
      storageVersion: s.storageVersion,
      errors: [...s.errors],
    };
  }

  alarms(node: string | undefined, signal?: AbortSignal): Promise<MemberAlarm[]> {
    return this.client.alarms(node, signal);
  }

  defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    return this.client.defragment(node, opts);
  }

  forfeitLeadership(node: string, signal?: AbortSignal): Promise<string> {
    return this.client.forfeitLeadership(node, signal);
  }

  disarmAlarms(node: string, signal?: AbortSignal): Promise<MemberAlarm[]> {
    return this.client.disarmAlarms(node, signal);
  }

  close(): void {
    this.client.close();
  }
}
