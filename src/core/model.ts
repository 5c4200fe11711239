// The model every part shares: what we know about each member. Pure data.

import type { DefragError } from "./errors.js";

export type AlarmName = "NOSPACE" | "CORRUPT" | "NONE";

export interface MemberAlarm {
  memberId: bigint;
  alarm: AlarmName;
}

/** One entry of the etcd member list. */
export interface MemberInfo {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
  /** Where the backend reaches this member (see Backend), or undefined when it cannot tell. */
  node: string | undefined;
}

/** One member's status as its own etcd reports it. Sizes in bytes. */
export interface MemberStatus {
  memberId: bigint;
  leaderId: bigint;
  dbSize: number;
  dbSizeInUse: number;
  raftTerm: bigint;
  raftIndex: bigint;
  raftAppliedIndex: bigint;
  isLearner: boolean;
  protocolVersion: string;
  storageVersion: string;
  errors: string[];
}

/** A node as the tool sees it: its member's status, or why it could not be read. */
export type NodeView =
  | { node: string; ok: true; status: MemberStatus; name: string; alarms: AlarmName[] }
  | { node: string; ok: false; error: DefragError; name: string };

export interface ClusterView {
  /** The member list, when it could be read. */
  members: MemberInfo[] | undefined;
  nodes: NodeView[];
  alarms: MemberAlarm[];
  /** Problems that do not belong to one node (e.g. the alarm list could not be read). */
  warnings: string[];
}

/** What etcd itself says about defragmentation on one member (from its log). */
export interface DefragActivity {
  /**
   * A defragment running right now, or a call waiting for one: since when (etcd's clock, ms
   * since the epoch, when the log says), and whether a Defragment call or etcd's own start-up
   * defragment started it. Undefined when none is.
   */
  inProgress: { since: number | undefined; by: "call" | "start-up" } | undefined;
  /** Defragmentations that finished, oldest first: when (etcd's clock) and how long etcd itself took. */
  finished: { end: number; tookMs: number }[];
  /** When this member's raft saw the leader change (elected, changed, lost), oldest first (etcd's clock). */
  elections?: number[];
}

/** One update of a member's defragment feed (Backend.followDefrags). */
export interface DefragFeedUpdate {
  activity: DefragActivity;
  /**
   * Whether what was read back fixes the state at its start: false when it shows no marker at all
   * (no defragment starting or ending, no restart), so a defragment that started before it may
   * still be running unseen. The run then needs a second signal before it calls the member quiet.
   */
  anchored: boolean;
}

/**
 * Members of the member list that no node of the view is: neither addressed (their node) nor answered
 * as (their member id). With explicit nodes naming fewer nodes than there are members, or a member whose
 * peer URL names no address. Never silently fewer rows than members (README, status).
 */
export function membersNotRead(view: Pick<ClusterView, "members" | "nodes">): MemberInfo[] {
  const nodes = new Set(view.nodes.map((n) => n.node));
  const ids = new Set(view.nodes.flatMap((n) => (n.ok ? [n.status.memberId] : [])));
  return (view.members ?? []).filter((m) => !ids.has(m.id) && (m.node === undefined || !nodes.has(m.node)));
}

export function isLeader(s: MemberStatus): boolean {
  return s.leaderId !== 0n && s.leaderId === s.memberId;
}

export function freeBytes(s: Pick<MemberStatus, "dbSize" | "dbSizeInUse">): number {
  return Math.max(0, s.dbSize - s.dbSizeInUse);
}

/** free / size, 0 for an empty file. */
export function fragmentation(s: Pick<MemberStatus, "dbSize" | "dbSizeInUse">): number {
  return s.dbSize > 0 ? freeBytes(s) / s.dbSize : 0;
}

/**
 * A node's lifecycle as its platform reports it (an upgrade, a reboot, up and serving). A member is
 * defragmented only while every node of the cluster is steady: a defragment during another node's
 * reboot or upgrade leaves the cluster with two members out at once.
 */
export interface NodeLifecycle {
  /** The platform's name for the stage the node is in ("RUNNING", "UPGRADING", ...). */
  stage: string;
  /** The stage the platform serves in (Talos: RUNNING); every other is a boot, upgrade, reboot, ... */
  working: boolean;
  /** Ready, judged only in the working stage (Talos reports ready in stages it checks nothing in). */
  ready: boolean;
  /** What the platform reports unmet, each "name: reason". */
  unmet: string[];
}

/** The filesystem holding a member's data, as its platform reports it. */
export interface DataDisk {
  /** Where the data is (a path on the node). */
  path: string;
  sizeBytes: number;
  /** What may still be written there (for an unprivileged user, as df shows it). */
  availableBytes: number;
}

/** One node's lifecycle reading: the lifecycle, not reported at all, or not readable now. */
export type LifecycleReading =
  | { node: string; lifecycle: NodeLifecycle }
  /** The platform does not report it to this credential (an older release, a narrow role). */
  | { node: string; unsupported: string }
  | { node: string; error: string };

/** etcd's HashKV of members at one revision (Backend.hashes). */
export interface MemberHashes {
  revision: bigint;
  compactRevision: bigint;
  hashes: { node: string; hash: number }[];
}
