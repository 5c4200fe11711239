// Safety gates: the cluster must be healthy enough that blocking one member is
// harmless. Checked before the run and again before every member. Pure.

import { affectedWarning, judgeEtcdVersion } from "./etcd-versions.js";
import { formatBytes, formatMemberId } from "./units.js";
import {
  type ClusterView,
  type DataDisk,
  type LifecycleReading,
  type MemberInfo,
  type MemberStatus,
  type NodeView,
} from "./model.js";

/** Every safety gate, by the name results, logs and metrics use. */
export const GATE_NAMES = [
  "member-list",
  "reachable",
  "leader",
  "caught-up",
  "corrupt",
  "quorum",
  /** The credential does not allow what the plan needs. */
  "permission",
  /** A defragment not started by this run is in progress, or cannot be ruled out. */
  "quiet",
  /** The snapshot asked for before the first defragment could not be taken. */
  "snapshot",
  /** Another run of this tool holds the guard (the Kubernetes Lease). */
  "another-run",
  /** A member's etcd version is unknown, or affected by the snapshot/defragment bug under --affected-etcd refuse. */
  "etcd-version",
  /** A member's configuration was read but does not parse (its quota): nothing may rely on it. */
  "member-config",
  /** A node of the cluster is not up and serving (an upgrade, a reboot), or that cannot be read. */
  "lifecycle",
  /** Too little room on a member's data filesystem for its defragment's copy: that member skipped. */
  "disk",
  /** The cluster kept electing leaders for --max-wait: never stable for the settle time. */
  "election",
  /** The members' data differ (etcd's HashKV) before the first defragment, or cannot be compared. */
  "data",
] as const;
export type GateName = (typeof GATE_NAMES)[number];

export interface GateFailure {
  gate: GateName;
  node?: string;
  message: string;
}

export interface GateOptions {
  /** Needed when fewer than 3 voting members: blocking one then stops writes. */
  allowDowntime: boolean;
  /** How many raft entries a member's applied index may trail the leader's. */
  maxAppliedLag: number;
  /**
   * A member on an etcd affected by the snapshot/defragment bug (core/etcd-versions.ts):
   * "caught-up" defragments it only while its applied index equals the leader's (checked
   * just before its call, run/caught-up.ts); "refuse" refuses the run.
   */
  affectedEtcd: AffectedEtcdMode;
  /** Where a fixed etcd comes from, in the backend's words (BackendWords.fixedEtcd). */
  fixedEtcd: (fixedIn: string) => string;
}

export type AffectedEtcdMode = "caught-up" | "refuse";

/** Raft entries; generous for a busy cluster whose statuses are read a few ms apart. */
export const DEFAULT_MAX_APPLIED_LAG = 1000;

export interface VotingMember {
  member: MemberInfo;
  view: NodeView | undefined;
}

/** Pairs each voting member of the member list with the node that serves it. */
export function votingMembers(view: ClusterView): VotingMember[] {
  return (view.members ?? [])
    .filter((m) => !m.isLearner)
    .map((member) => ({
      member,
      view:
        view.nodes.find((n) => n.ok && n.status.memberId === member.id) ??
        view.nodes.find((n) => !n.ok && n.node === member.node),
    }));
}

function label(m: MemberInfo): string {
  return `${m.name || "(unnamed)"} (${formatMemberId(m.id)})`;
}

export function checkGates(view: ClusterView, opts: GateOptions): GateFailure[] {
  if (view.members === undefined) {
    return [
      {
        gate: "member-list",
        message: "the etcd member list could not be read, so the voting members are unknown",
      },
    ];
  }
  const failures: GateFailure[] = [];
  const voting = votingMembers(view);

  const answering: { member: MemberInfo; node: string; status: MemberStatus }[] = [];
  for (const { member, view: n } of voting) {
    if (n === undefined) {
      failures.push({
        gate: "reachable",
        message: `voting member ${label(member)} at ${member.node ?? "an unknown address"} is not among the nodes; add it to --nodes`,
      });
    } else if (!n.ok) {
      failures.push({
        gate: "reachable",
        node: n.node,
        message: `voting member ${label(member)} does not answer: ${n.error.message}`,
      });
    } else {
      answering.push({ member, node: n.node, status: n.status });
    }
  }

  for (const a of answering) {
    const verdict = judgeEtcdVersion(a.status.protocolVersion);
    if (verdict.kind === "unknown")
      failures.push({
        gate: "etcd-version",
        node: a.node,
        message: `member ${label(a.member)} ${verdict.reason}: whether it is safe to defragment cannot be told`,
      });
    else if (verdict.kind === "affected" && opts.affectedEtcd === "refuse")
      failures.push({
        gate: "etcd-version",
        node: a.node,
        message: `${affectedWarning(label(a.member), verdict, a.status.protocolVersion, opts.fixedEtcd)}; refused (--affected-etcd refuse)`,
      });
  }

  const leaders = new Set(answering.map((a) => a.status.leaderId));
  const leaderId = leaders.size === 1 ? [...leaders][0] : undefined;
  if (answering.length > 0 && (leaderId === undefined || leaderId === 0n)) {
    const views = answering.map(
      (a) => `${a.node} sees ${a.status.leaderId === 0n ? "no leader" : formatMemberId(a.status.leaderId)}`,
    );
    failures.push({ gate: "leader", message: `the members do not agree on one leader: ${views.join(", ")}` });
  }
  const leader = answering.find((a) => a.status.memberId === leaderId);
  if (leaderId !== undefined && leaderId !== 0n && leader === undefined) {
    failures.push({
      gate: "leader",
      message: `the leader ${formatMemberId(leaderId)} is not a voting member that answers`,
    });
  }
  if (leader !== undefined) {
    for (const a of answering) {
      const lag = leader.status.raftAppliedIndex - a.status.raftAppliedIndex;
      if (lag > BigInt(opts.maxAppliedLag)) {
        failures.push({
          gate: "caught-up",
          node: a.node,
          message: `member ${label(a.member)} has applied ${a.status.raftAppliedIndex} entries, ${lag} behind the leader's ${leader.status.raftAppliedIndex}`,
        });
      }
    }
  }

  for (const alarm of view.alarms.filter((a) => a.alarm === "CORRUPT")) {
    const m = view.members.find((x) => x.id === alarm.memberId);
    failures.push({
      gate: "corrupt",
      message: `a CORRUPT alarm is raised on member ${m ? label(m) : formatMemberId(alarm.memberId)}: restore that member from a snapshot first; this tool never touches or disarms it`,
    });
  }

  if (voting.length < 3 && !opts.allowDowntime) {
    failures.push({
      gate: "quorum",
      message: `only ${voting.length} voting member${voting.length === 1 ? "" : "s"}: while one is defragmented the cluster has no quorum and stops accepting writes; pass --allow-downtime to accept that`,
    });
  }
  return failures;
}

/**
 * After its defragment: the member answers, knows a leader, and has applied about as
 * much as the leader. Its status when healthy, else undefined. The next member's gates
 * then check the whole cluster.
 */
export function memberHealthy(
  view: ClusterView,
  node: string,
  maxAppliedLag: number,
): MemberStatus | undefined {
  const n = view.nodes.find((x) => x.node === node);
  if (n === undefined || !n.ok || n.status.leaderId === 0n) return undefined;
  const leader = view.nodes.find((x) => x.ok && x.status.memberId === n.status.leaderId);
  if (leader?.ok && leader.status.raftAppliedIndex - n.status.raftAppliedIndex > BigInt(maxAppliedLag))
    return undefined;
  return n.status;
}

/**
 * Fully caught up: the member answers, knows a leader that answers too, and has applied
 * everything the leader has (read in the same view). Its status when so, else undefined.
 * Stricter than memberHealthy, which lets a member pass when its leader was not read.
 */
export function caughtUpWithLeader(view: ClusterView, node: string): MemberStatus | undefined {
  const n = view.nodes.find((x) => x.node === node);
  if (n === undefined || !n.ok || n.status.leaderId === 0n) return undefined;
  const leader = view.nodes.find((x) => x.ok && x.status.memberId === n.status.leaderId);
  if (leader === undefined || !leader.ok) return undefined;
  return leader.status.raftAppliedIndex <= n.status.raftAppliedIndex ? n.status : undefined;
}

/** The answering members on an etcd affected by the snapshot/defragment bug, each with its warning. */
export function affectedMembers(
  view: ClusterView,
  fixedEtcd: (fixedIn: string) => string,
): { node: string; version: string; warning: string }[] {
  const out: { node: string; version: string; warning: string }[] = [];
  for (const n of view.nodes) {
    if (!n.ok) continue;
    const verdict = judgeEtcdVersion(n.status.protocolVersion);
    const member = view.members?.find((m) => m.id === n.status.memberId);
    if (verdict.kind === "affected")
      out.push({
        node: n.node,
        version: n.status.protocolVersion,
        warning: affectedWarning(
          member ? `${label(member)} on ${n.node}` : n.node,
          verdict,
          n.status.protocolVersion,
          fixedEtcd,
        ),
      });
  }
  return out;
}

/**
 * Every node of the cluster must be up and serving (its platform's working stage, and ready) before
 * a member is defragmented: one blocked member while another node reboots or upgrades is two out at
 * once. A node whose lifecycle cannot be read now counts as not steady; one whose platform does not
 * report it at all is no failure (the run says so once).
 */
export function checkLifecycle(readings: readonly LifecycleReading[]): GateFailure[] {
  const failures: GateFailure[] = [];
  for (const r of readings) {
    if ("error" in r) {
      failures.push({
        gate: "lifecycle",
        node: r.node,
        message: `the lifecycle of node ${r.node} cannot be read: ${r.error}`,
      });
    } else if ("lifecycle" in r && !(r.lifecycle.working && r.lifecycle.ready)) {
      const l = r.lifecycle;
      const unmet = l.unmet.length > 0 ? ` (unmet: ${l.unmet.join("; ")})` : "";
      failures.push({
        gate: "lifecycle",
        node: r.node,
        message: l.working
          ? `node ${r.node} is ${l.stage} but not ready${unmet}`
          : `node ${r.node} is ${l.stage}${unmet}, not up and serving`,
      });
    }
  }
  return failures;
}

/**
 * bbolt's defragment writes a compacted copy of the live data into a new file beside the database,
 * then swaps them: the filesystem must hold the data in use once more, with room for page overhead
 * and what etcd writes meanwhile (its WAL). The margin: 10% of the data in use, plus 64 MiB.
 */
export const DISK_MARGIN = { ratio: 0.1, bytes: 64 * 1024 ** 2 } as const;

export function diskNeeded(dbSizeInUse: number): number {
  return Math.ceil(dbSizeInUse * (1 + DISK_MARGIN.ratio)) + DISK_MARGIN.bytes;
}

/** Room for the member's defragment on the filesystem holding its data, or why not (gate disk). */
export function checkDisk(
  node: string,
  status: Pick<MemberStatus, "dbSizeInUse">,
  disk: DataDisk,
): GateFailure | undefined {
  const needed = diskNeeded(status.dbSizeInUse);
  if (disk.availableBytes >= needed) return undefined;
  return {
    gate: "disk",
    node,
    message: `${formatBytes(disk.availableBytes)} available on ${disk.path} of ${node}, and its defragment needs ${formatBytes(needed)} there (a copy of the ${formatBytes(status.dbSizeInUse)} in use, plus 10% and 64 MiB)`,
  };
}
