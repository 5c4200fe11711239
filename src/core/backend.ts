// What the run needs from a cluster, and nothing about how it is reached. The
// Talos API implements it (src/talos/backend.ts); a direct-etcd backend would
// implement the same contract without any change to core/ or run/.
//
// A member is addressed by its `node`: the string the backend reaches it by
// (a Talos node address for the Talos API, a client URL for etcd itself). The
// backend fills MemberInfo.node, so the run never guesses addresses.
//
// Every method rejects with a DefragError whose kind says what happened
// (src/core/errors.ts); anything else it throws is treated as a bug.

import type { MemberConfig } from "./member-config.js";
import type {
  DataDisk,
  DefragFeedUpdate,
  MemberAlarm,
  MemberHashes,
  MemberInfo,
  MemberStatus,
  NodeLifecycle,
} from "./model.js";

/** Whether the credential allows an action, known before trying it. */
export type Permission =
  | { allowed: true }
  /** Not allowed: `reason` names what is missing and what the credential has, for a person. */
  | { allowed: false; reason: string };

/** What this backend's credential may do, asked once before the first change. */
export interface Permissions {
  defragment: Permission;
  moveLeadership: Permission;
}

/**
 * The backend's own words for messages from core/ and run/: the names of its platform's things and
 * what a person does there. core/ and run/ say nothing platform-specific themselves (a unit test
 * keeps it so), so a message reads right whatever the backend.
 */
export interface BackendWords {
  /** How a person inspects one member by hand (e.g. a command line). */
  inspect: (node: string) => string;
  /** How a person sees where a node is in its lifecycle (an upgrade, a reboot) by hand. */
  inspectLifecycle: (node: string) => string;
  /** What a person does about a node whose etcd data filesystem is too full for a defragment. */
  freeDisk: (node: string) => string;
  /** The option (and its environment variable) that names the members to read. */
  nodesOption: string;
  /** Where a member's etcd flags are read from, as a person knows it ("etcd spec"). */
  configName: string;
  /** Where a person changes a member's etcd flags. */
  configWhere: string;
  /** What lets a member's configuration be read, when it could not be (a role, an API). */
  configUnreadable: string;
  /** How someone defragments a member by hand here, when naming who else may be defragmenting. */
  manualDefrag: string;
  /** Where an etcd of these fixed versions comes from here ("shipped by <the platform's release>"). */
  fixedEtcd: (fixedIn: string) => string;
  /** What a person does to get a fixed etcd here. */
  upgradeEtcd: string;
  /** Where the run sees defragments that it did not start, for messages ("its etcd log"). */
  defragSignal: string;
}

export interface Backend {
  /** Its words for messages (see BackendWords). */
  readonly words: BackendWords;
  /** The etcd member list, as any member that answers sees it. */
  members(signal?: AbortSignal): Promise<MemberInfo[]>;
  /** One member's own status. */
  status(node: string, signal?: AbortSignal): Promise<MemberStatus>;
  /** Every alarm of the cluster (cluster state: any member lists all), through any member that answers. */
  alarms(signal?: AbortSignal): Promise<MemberAlarm[]>;
  /**
   * Defragments one member and blocks it until done; `timeoutMs` is this call's own
   * deadline. etcd does not stop when the call does: after a timeout, a dropped
   * connection or an abort the member may still be defragmenting.
   */
  defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void>;
  /**
   * Follows what etcd itself says about defragmentation on `node`, from now until `signal` aborts:
   * one in progress, whoever started it (another run, a person, etcd's start-up defragment), and
   * the ones that finished, with etcd's own duration. Yields the member's state once everything
   * etcd said before the call has been read, then again each time it changes, as etcd says it.
   * `anchored` is false when what could be read back does not show whether a defragment that
   * started earlier is still running (see DefragFeedUpdate). It ends only when `signal` aborts;
   * anything else that ends it (a broken stream, a refusal) rejects with a DefragError: until it
   * is followed again, nothing is known about the member.
   */
  followDefrags(node: string, signal: AbortSignal): AsyncIterable<DefragFeedUpdate>;
  /**
   * Streams an etcd snapshot of `node`'s member to `write`: the database as etcd's Maintenance.Snapshot
   * sends it, etcd's sha256 of it in the last 32 bytes. Reads only; blocks nothing.
   */
  snapshot(
    node: string,
    write: (chunk: Uint8Array) => Promise<void>,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<void>;
  /**
   * How `node`'s etcd is configured, as far as defragmentation cares: its quota
   * (quota-backend-bytes; absent when not set, so etcd's 2 GiB default applies) and its
   * start-up defragment flags. Read once per command, not per member step: it changes only
   * when etcd restarts. Rejects with kind "config", naming the node, when it was read but a
   * setting does not parse (a quota that is not a byte count): nothing may rely on it then.
   * Rejects with any other kind when it cannot be read at all (an older server, a role that
   * may not read it): the caller falls back to etcd's defaults and says so.
   */
  memberConfig(node: string, signal?: AbortSignal): Promise<MemberConfig>;
  /**
   * Where `node` is in its platform's lifecycle now: up and serving, or booting, upgrading,
   * rebooting, shutting down. Resolves `undefined` (with why, for one log line) when the platform
   * does not report it to this credential: an older release, a role that may not read it; the run
   * then goes on without it. Rejects when it cannot be read now (the node is unreachable).
   */
  nodeLifecycle(
    node: string,
    signal?: AbortSignal,
  ): Promise<{ lifecycle: NodeLifecycle } | { unsupported: string }>;
  /**
   * The space on the filesystem holding `node`'s etcd data, now: a defragment writes a copy of the
   * live data beside the database file. Resolves `{ unsupported }` (with why, for
   * one log line) when the platform does not report it; rejects when it cannot be read now.
   */
  dataDisk(node: string, signal?: AbortSignal): Promise<{ disk: DataDisk } | { unsupported: string }>;
  /**
   * Moves leadership away from `node`; the new leader's name, or "" when `node` was not the leader.
   * `prefer`: the members to hand it to, best first (healthy, and already defragmented before the
   * others); a backend that cannot choose lets etcd choose.
   */
  forfeitLeadership(node: string, opts: { prefer: readonly bigint[]; signal?: AbortSignal }): Promise<string>;
  /**
   * etcd's HashKV of each of `nodes` at one revision (`revision`, else one every member has applied),
   * all at the same compaction: equal hashes mean equal data up to that revision. When `revision` has
   * been compacted away, at a newer one every member has (the reply's `revision` says which).
   * `{ unsupported }` when the backend cannot ask it (with why, for one log line).
   */
  hashes(
    nodes: readonly string[],
    revision?: bigint,
    signal?: AbortSignal,
  ): Promise<MemberHashes | { unsupported: string }>;
  /**
   * Compacts etcd's history to the current revision, applied before it resolves (the revision);
   * `{ unsupported }` when the backend cannot.
   */
  compact(signal?: AbortSignal): Promise<{ revision: bigint } | { unsupported: string }>;
  /**
   * Disarms every NOSPACE alarm and nothing else: a backend that can only disarm every
   * alarm at once re-reads the alarms just before, and rejects with kind "refused" when
   * any other alarm is raised. Returns what was disarmed.
   */
  disarmNospace(signal?: AbortSignal): Promise<MemberAlarm[]>;
  /** What the credential may do, without changing anything. */
  permissions(signal?: AbortSignal): Promise<Permissions>;
  close(): void;
}
