// The Backend over the Talos API: every call aimed at one node through apid, the
// certificate's roles as the permissions, and Talos's limits kept here (members
// are addressed by their peer-URL host; alarms can only be disarmed all at once).

import type { Backend, Permission, Permissions } from "../core/backend.js";
import { DefragError, failsEverywhere } from "../core/errors.js";
import { memberConfigFromFlags, type MemberConfig } from "../core/member-config.js";
import type {
  DefragFeedUpdate,
  MemberAlarm,
  MemberInfo,
  MemberStatus,
  NodeLifecycle,
  DataDisk,
} from "../core/model.js";
import type { TalosClient } from "./client.js";
import { followDefrags } from "./defrag-feed.js";
import { TALOS_WORDS } from "./words.js";
import { ALLOWED_ROLES, roleNeeded, rolesAllow, type TalosMethod } from "./rbac.js";

/** The calls the backend makes; the client in production, a fake in unit tests. */
/** Where Talos keeps etcd's data (constants.EtcdDataPath). */
export const ETCD_DATA_PATH = "/var/lib/etcd";

export type TalosCalls = Pick<
  TalosClient,
  | "memberList"
  | "status"
  | "alarms"
  | "etcdLog"
  | "followEtcdLog"
  | "etcdSnapshot"
  | "defragment"
  | "forfeitLeadership"
  | "disarmAlarms"
  | "etcdExtraArgs"
  | "machineStatus"
  | "statfs"
  | "close"
>;

export interface TalosBackendOptions {
  /** The client certificate's roles; empty when unknown (then every call is tried). */
  roles: readonly string[];
  /** Explicit nodes, else none (they come from the member list). */
  nodes: readonly string[];
}

/** Talos addresses a control-plane node by the host of its etcd member's first peer URL. */
export function peerHost(member: { peerUrls: readonly string[] }): string | undefined {
  for (const raw of member.peerUrls) {
    try {
      return new URL(raw).hostname.replace(/^\[|\]$/g, "");
    } catch {
      // An unparsable URL: try the next one.
    }
  }
  return undefined;
}

export class TalosBackend implements Backend {
  readonly words = TALOS_WORDS;
  /** Nodes known from the last member list, to read the alarms through when the first choice cannot. */
  private memberNodes: string[] = [];

  constructor(
    private readonly client: TalosCalls,
    private readonly opts: TalosBackendOptions,
  ) {}

  async members(signal?: AbortSignal): Promise<MemberInfo[]> {
    const members = (await this.client.memberList(signal)).map((m) => ({
      id: m.id,
      name: m.hostname,
      peerUrls: [...m.peerUrls],
      clientUrls: [...m.clientUrls],
      isLearner: m.isLearner,
      node: peerHost(m),
    }));
    this.memberNodes = members.map((m) => m.node).filter((n): n is string => n !== undefined);
    return members;
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

  async alarms(signal?: AbortSignal): Promise<MemberAlarm[]> {
    return (await this.readAlarms(signal)).alarms;
  }

  /**
   * Alarms are cluster state: any member lists all of them. Asked first through the
   * first explicit node, else the endpoint's own node (no `node` metadata); when that
   * one cannot answer (a worker endpoint, etcd down there), through the other nodes.
   */
  private async readAlarms(
    signal?: AbortSignal,
  ): Promise<{ alarms: MemberAlarm[]; via: string | undefined }> {
    const first = this.opts.nodes[0];
    let failure: DefragError;
    try {
      return { alarms: await this.client.alarms(first, signal), via: first };
    } catch (err) {
      failure = DefragError.from(err);
      if (failsEverywhere(failure)) throw failure;
    }
    for (const node of await this.otherNodes(first, signal)) {
      try {
        return { alarms: await this.client.alarms(node, signal), via: node };
      } catch (err) {
        const e = DefragError.from(err);
        if (failsEverywhere(e)) throw e;
      }
    }
    throw failure;
  }

  private async otherNodes(except: string | undefined, signal?: AbortSignal): Promise<string[]> {
    if (this.opts.nodes.length === 0 && this.memberNodes.length === 0) {
      try {
        await this.members(signal);
      } catch {
        // No member list either: nothing else to try; the first failure is reported.
      }
    }
    const nodes = this.opts.nodes.length > 0 ? this.opts.nodes : this.memberNodes;
    return nodes.filter((n) => n !== except);
  }

  /** The node's etcd service log, followed (read with os:reader or more): src/talos/defrag-feed.ts. */
  followDefrags(node: string, signal: AbortSignal): AsyncIterable<DefragFeedUpdate> {
    return followDefrags(this.client, node, signal);
  }

  snapshot(
    node: string,
    write: (chunk: Uint8Array) => Promise<void>,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<void> {
    return this.client.etcdSnapshot(node, write, opts);
  }

  /** From the node's etcd spec resource (cluster.etcd.extraArgs), read with os:reader or more. */
  async memberConfig(node: string, signal?: AbortSignal): Promise<MemberConfig> {
    return memberConfigFromFlags(
      await this.client.etcdExtraArgs(node, signal),
      node,
      TALOS_WORDS.configWhere,
    );
  }

  /** A Talos that does not serve the resource, or a role that may not read it: unsupported, said once. */
  async nodeLifecycle(
    node: string,
    signal?: AbortSignal,
  ): Promise<{ lifecycle: NodeLifecycle } | { unsupported: string }> {
    try {
      return { lifecycle: await this.client.machineStatus(node, signal) };
    } catch (err) {
      const e = DefragError.from(err);
      if (e.kind === "permission" || e.kind === "not-control-plane")
        return {
          unsupported: `Talos on ${node} does not let this credential read its machine status (${e.message})`,
        };
      throw err;
    }
  }

  /** etcd's data directory on Talos (constants.EtcdDataPath), on the EPHEMERAL volume. */
  async dataDisk(node: string, signal?: AbortSignal): Promise<{ disk: DataDisk } | { unsupported: string }> {
    try {
      return { disk: await this.client.statfs(node, ETCD_DATA_PATH, signal) };
    } catch (err) {
      const e = DefragError.from(err);
      // Talos 1.14 and older have no StorageService ("unknown service"): unimplemented.
      if (e.kind === "not-control-plane" || e.kind === "permission")
        return {
          unsupported: `Talos on ${node} does not report the free space of ${ETCD_DATA_PATH} to this credential (talosctl df: Talos after 1.14)`,
        };
      throw err;
    }
  }

  defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    return this.client.defragment(node, opts);
  }

  /** Talos's EtcdForfeitLeadership lets etcd choose the new leader: `prefer` cannot be passed on. */
  forfeitLeadership(
    node: string,
    opts: { prefer: readonly bigint[]; signal?: AbortSignal },
  ): Promise<string> {
    return this.client.forfeitLeadership(node, opts.signal);
  }

  /** The Talos API has no HashKV. */
  hashes(): Promise<{ unsupported: string }> {
    return Promise.resolve({ unsupported: "the Talos API has no HashKV" });
  }

  /** The Talos API has no compaction. */
  compact(): Promise<{ unsupported: string }> {
    return Promise.resolve({
      unsupported: "the Talos API cannot compact etcd (Kubernetes compacts it every 5 minutes)",
    });
  }

  /** Talos disarms every alarm of the cluster at once: only when NOSPACE is, just before, the only one. */
  async disarmNospace(signal?: AbortSignal): Promise<MemberAlarm[]> {
    const now = await this.readAlarms(signal);
    const others = now.alarms.filter((a) => a.alarm !== "NOSPACE");
    if (others.length > 0) {
      throw new DefragError(
        "refused",
        `not disarming: besides NOSPACE, ${others.map((a) => a.alarm).join(", ")} is raised, and Talos can only disarm every alarm at once`,
        { hint: "resolve the other alarm first; this tool never disarms it" },
      );
    }
    if (now.alarms.length === 0) return [];
    const via = now.via ?? this.opts.nodes[0] ?? this.memberNodes[0];
    if (via === undefined)
      throw new DefragError("etcd", "no node to disarm the alarms through", {
        hint: "pass --nodes to name the control-plane nodes",
      });
    return this.client.disarmAlarms(via, signal);
  }

  permissions(): Promise<Permissions> {
    return Promise.resolve({
      defragment: this.allows("EtcdDefragment"),
      moveLeadership: this.allows("EtcdForfeitLeadership"),
    });
  }

  private allows(method: TalosMethod): Permission {
    const roles = this.opts.roles;
    if (roles.length === 0 || rolesAllow(roles, method)) return { allowed: true };
    const has = roles.join(", ");
    if (method === "EtcdForfeitLeadership")
      return { allowed: false, reason: `moving leadership needs role os:admin (the certificate has ${has})` };
    const also =
      ALLOWED_ROLES[method].includes("os:admin") && roleNeeded(method) !== "os:admin" ? " (or os:admin)" : "";
    return {
      allowed: false,
      reason: `the client certificate's roles (${has}) do not allow ${method}: it needs role ${roleNeeded(method)}${also}`,
    };
  }

  close(): void {
    this.client.close();
  }
}
