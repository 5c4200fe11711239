// Reading the cluster: which nodes, and each member's status and alarms.

import type { Backend } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import {
  peerHost,
  type ClusterView,
  type MemberAlarm,
  type MemberInfo,
  type NodeView,
} from "../core/model.js";

export interface ObserveOptions {
  /** Explicit nodes (--nodes or the context's); empty means discover from the member list. */
  nodes: readonly string[];
  signal?: AbortSignal | undefined;
}

/** Nodes from the member list: every member's peer-URL host (learners included, marked by their status). */
export function nodesFromMembers(members: readonly MemberInfo[]): string[] {
  const hosts = members.map(peerHost).filter((h): h is string => h !== undefined);
  return [...new Set(hosts)];
}

export async function observeCluster(backend: Backend, opts: ObserveOptions): Promise<ClusterView> {
  const warnings: string[] = [];
  const readStatuses = (nodes: readonly string[]) =>
    Promise.all(
      nodes.map(async (node) => {
        try {
          return { node, ok: true as const, status: await backend.status(node, opts.signal) };
        } catch (err) {
          return { node, ok: false as const, error: DefragError.from(err, "etcd") };
        }
      }),
    );
  const readAlarms = async (node: string | undefined): Promise<MemberAlarm[] | DefragError> => {
    try {
      return await backend.alarms(node, opts.signal);
    } catch (err) {
      return DefragError.from(err, "etcd");
    }
  };

  // The member list and the alarms are read at once; with the nodes known, the statuses too.
  // Without nodes the alarms come from the endpoint's own node: they are cluster state.
  const known = opts.nodes.length > 0;
  const [membersResult, early, earlyAlarms] = await Promise.all([
    backend.members(opts.signal).then(
      (m) => m,
      (err: unknown) => DefragError.from(err, "etcd"),
    ),
    known ? readStatuses(opts.nodes) : Promise.resolve(undefined),
    readAlarms(opts.nodes[0]),
  ]);
  let members: MemberInfo[] | undefined;
  if (membersResult instanceof DefragError) {
    const e = membersResult;
    // Without explicit nodes the member list is the only way to find them.
    if (!known || e.kind === "permission" || e.kind === "tls" || e.kind === "aborted") {
      throw new DefragError(e.kind, `cannot list the etcd members: ${e.message}`, {
        node: e.node,
        endpoint: e.endpoint,
        hint: e.hint ?? (known ? undefined : "pass --nodes to name the control-plane nodes"),
        cause: e,
      });
    }
    warnings.push(`cannot list the etcd members (${e.describe()}); member names are unknown`);
  } else {
    members = membersResult;
  }
  const nodes = known ? [...opts.nodes] : nodesFromMembers(members ?? []);
  if (nodes.length === 0) {
    throw new DefragError("etcd", "the etcd member list names no members with a peer URL", {
      hint: "pass --nodes to name the control-plane nodes",
    });
  }
  const statuses = early ?? (await readStatuses(nodes));

  // Alarms are cluster state: any member lists all of them; retry through one that answered.
  let alarmsResult = earlyAlarms;
  const reachable = statuses.find((s) => s.ok);
  if (alarmsResult instanceof DefragError && reachable !== undefined) {
    alarmsResult = await readAlarms(reachable.node);
  }
  let alarms: MemberAlarm[] = [];
  if (alarmsResult instanceof DefragError) {
    warnings.push(`cannot list the etcd alarms: ${alarmsResult.describe()}`);
  } else {
    alarms = alarmsResult;
  }

  const nameOf = (id: bigint | undefined, node: string): string => {
    const byId = id === undefined ? undefined : members?.find((m) => m.id === id);
    return (byId ?? members?.find((m) => peerHost(m) === node))?.name ?? "";
  };
  const views: NodeView[] = statuses.map((s) => {
    if (s.ok) {
      const id = s.status.memberId;
      return {
        node: s.node,
        ok: true,
        status: s.status,
        name: nameOf(id, s.node),
        alarms: alarms.filter((a) => a.memberId === id).map((a) => a.alarm),
      };
    }
    return { node: s.node, ok: false, error: s.error, name: nameOf(undefined, s.node) };
  });
  return { members, nodes: views, alarms, warnings };
}
