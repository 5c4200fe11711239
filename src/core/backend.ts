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
import type { DefragActivity, MemberAlarm, MemberInfo, MemberStatus } from "./model.js";

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

export interface Backend {
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
   * What etcd itself says about defragmentation on `node`: one in progress now, whoever
   * started it (another run, a person, etcd's start-up defragment), and the ones that
   * finished with etcd's own duration. Rejects when it cannot tell: then nothing is started.
   */
  defragActivity(node: string, signal?: AbortSignal): Promise<DefragActivity>;
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
  /** Moves leadership away from `node`; the new leader's name, or "" when `node` was not the leader. */
  forfeitLeadership(node: string, signal?: AbortSignal): Promise<string>;
  /**
   * Disarms every NOSPACE alarm and nothing else: a backend that can only disarm every
   * alarm at once re-reads the alarms just before, and rejects with kind "refused" when
   * any other alarm is raised. Returns what was disarmed.
   */
  disarmNospace(signal?: AbortSignal): Promise<MemberAlarm[]>;
  /** What the credential may do, without changing anything. */
  permissions(signal?: AbortSignal): Promise<Permissions>;
  /** How a person inspects one member by hand, for messages (e.g. a command line). */
  inspectHint(node: string): string;
  close(): void;
}
