// Reading the cluster: which members, each one's status, and the alarms, all at once.

import type { Backend } from "../core/backend.js";
import { DefragError, failsEverywhere } from "../core/errors.js";
import {
  membersNotRead,
  type ClusterView,
  type MemberAlarm,
  type MemberInfo,
  type NodeView,
} from "../core/model.js";
import { formatMemberId } from "../core/units.js";

export interface ObserveOptions {
  /** Explicit nodes (--nodes or the context's); empty means discover them from the member list. */
  nodes: readonly string[];
  signal?: AbortSignal | undefined;
  /** Called once the nodes to read are known, before their statuses are read (to read more at once). */
  onNodes?: ((nodes: readonly string[]) => void) | undefined;
}

/** The nodes of the member list (learners included, marked by their status), as the backend reaches them. */
export function nodesFromMembers(members: readonly MemberInfo[]): string[] {
  return [...new Set(members.map((m) => m.node).filter((n): n is string => n !== undefined))];
}

export async function observeCluster(backend: Backend, opts: ObserveOptions): Promise<ClusterView> {
  const warnings: string[] = [];
  const readStatuses = (nodes: readonly string[]) =>
    Promise.all(
      nodes.map(async (node) => {
        try {
          return { node, ok: true as const, status: await backend.status(node, opts.signal) };
        } catch (err) {
          return { node, ok: false as const, error: DefragError.from(err) };
        }
      }),
    );
  const settle = <T>(p: Promise<T>): Promise<T | DefragError> =>
    p.then(
      (value) => value,
      (err: unknown) => DefragError.from(err),
    );

  // The member list and the alarms are read at once; with the nodes known, the statuses too.
  const known = opts.nodes.length > 0;
  if (known) opts.onNodes?.(opts.nodes);
  const [membersResult, early, alarmsResult] = await Promise.all([
    settle(backend.members(opts.signal)),
    known ? readStatuses(opts.nodes) : Promise.resolve(undefined),
    settle(backend.alarms(opts.signal)),
  ]);
  let members: MemberInfo[] | undefined;
  if (membersResult instanceof DefragError) {
    const e = membersResult;
    // Without explicit nodes the member list is the only way to find them.
    if (!known || failsEverywhere(e)) {
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
    throw new DefragError("etcd", "the etcd member list names no member that can be addressed", {
      hint: "pass --nodes to name the control-plane nodes",
    });
  }
  if (!known) opts.onNodes?.(nodes);
  const statuses = early ?? (await readStatuses(nodes));
  for (const s of statuses) if (!s.ok && s.error.kind === "internal") throw s.error;

  let alarms: MemberAlarm[] = [];
  if (alarmsResult instanceof DefragError) {
    if (alarmsResult.kind === "internal") throw alarmsResult;
    warnings.push(`cannot list the etcd alarms: ${alarmsResult.describe()}`);
  } else {
    alarms = alarmsResult;
  }

  const nameOf = (id: bigint | undefined, node: string): string => {
    const byId = id === undefined ? undefined : members?.find((m) => m.id === id);
    return (byId ?? members?.find((m) => m.node === node))?.name ?? "";
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
  const unread = membersNotRead({ members, nodes: views });
  if (unread.length > 0) {
    const names = unread.map((m) => `${m.name || formatMemberId(m.id)}${m.node ? ` (${m.node})` : ""}`);
    warnings.push(
      `${unread.length} of the ${members?.length ?? 0} etcd members not read: ${names.join(", ")}; ` +
        (known
          ? `they are not among ${backend.words.nodesOption} (leave it unset to read every member)`
          : "the member list gives no address to reach them by"),
    );
  }
  return { members, nodes: views, alarms, warnings };
}
