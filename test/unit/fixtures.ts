// Small builders for ClusterView tables in unit tests.

import { DefragError } from "../../src/core/errors.js";
import type { ClusterView, MemberAlarm, MemberInfo, MemberStatus, NodeView } from "../../src/core/model.js";
import { MiB } from "../harness/units.js";

export interface FakeMember {
  id: bigint;
  node: string;
  name?: string;
  learner?: boolean;
  /** Omit for a member that does not answer. */
  status?: Partial<MemberStatus>;
  error?: string;
}

export function view(
  members: FakeMember[],
  opts: { leader?: bigint; alarms?: MemberAlarm[] } = {},
): ClusterView {
  const leader = opts.leader ?? members[0]?.id ?? 0n;
  const infos: MemberInfo[] = members.map((m) => ({
    id: m.id,
    name: m.name ?? `cp-${m.id}`,
    peerUrls: [`http://${m.node}:2380`],
    clientUrls: [`http://${m.node}:2379`],
    isLearner: m.learner ?? false,
    node: m.node,
  }));
  const nodes: NodeView[] = members.map((m): NodeView => {
    const name = m.name ?? `cp-${m.id}`;
    if (m.error !== undefined)
      return { node: m.node, ok: false, name, error: new DefragError("unreachable", m.error) };
    const status: MemberStatus = {
      memberId: m.id,
      leaderId: leader,
      dbSize: 100 * MiB,
      dbSizeInUse: 100 * MiB,
      raftTerm: 2n,
      raftIndex: 500n,
      raftAppliedIndex: 500n,
      isLearner: m.learner ?? false,
      protocolVersion: "3.6.16",
      storageVersion: "3.6.0",
      errors: [],
      ...m.status,
    };
    return { node: m.node, ok: true, name, status, alarms: [] };
  });
  return { members: infos, nodes, alarms: opts.alarms ?? [], warnings: [] };
}

export const m1: FakeMember = { id: 1n, node: "10.0.0.1" };
export const m2: FakeMember = { id: 2n, node: "10.0.0.2" };
export const m3: FakeMember = { id: 3n, node: "10.0.0.3" };
export const three: FakeMember[] = [m1, m2, m3];
