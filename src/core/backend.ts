// What the orchestrator needs from a cluster. The Talos API implements it
// (src/talos/backend.ts); a direct-etcd backend could implement it too.

import type { MemberAlarm, MemberInfo, MemberStatus } from "./model.js";

export interface Backend {
  /** The etcd member list, from any member. */
  members(signal?: AbortSignal): Promise<MemberInfo[]>;
  status(node: string, signal?: AbortSignal): Promise<MemberStatus>;
  /** All alarms of the cluster, read through `node` (undefined: whichever node the endpoint is). */
  alarms(node: string | undefined, signal?: AbortSignal): Promise<MemberAlarm[]>;
  /** Blocks that member until done; its own deadline; etcd does not stop when the call does. */
  defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void>;
  /** Name of the new leader, or "" when `node` was not the leader. */
  forfeitLeadership(node: string, signal?: AbortSignal): Promise<string>;
  /** Disarms every alarm of the cluster; returns what was disarmed. */
  disarmAlarms(node: string, signal?: AbortSignal): Promise<MemberAlarm[]>;
  close(): void;
}
