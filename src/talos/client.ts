// The Talos API client: one mutual-TLS HTTP/2 connection per endpoint, every
// call aimed at one node with the `node` metadata (apid's one-to-one proxying),
// failover to the next endpoint when one cannot be reached, and a deadline on
// every call except EtcdDefragment.

import type { CallOptions, Client } from "@connectrpc/connect";

import type { Config } from "../config/config.js";
import { DefragError, failsEverywhere } from "../core/errors.js";
import type { AlarmName, DataDisk, MemberAlarm, NodeLifecycle } from "../core/model.js";
import { EndpointPool, type EndpointPoolOptions } from "./endpoint-pool.js";
import { ETCD_SPEC, extraArgsOf } from "./etcd-spec.js";
import { MACHINE_STATUS, lifecycleOf } from "./machine-status.js";
import { ContainerDriver, type Metadata } from "./gen/common/common_pb.js";
import {
  EtcdMemberAlarm_AlarmType,
  type MachineService,
  type EtcdMember,
  type EtcdMemberAlarm,
  type EtcdMemberStatus,
} from "./gen/machine/machine_pb.js";
import type { TalosMethod } from "./rbac.js";
import { unpackMessages } from "./replies.js";

export type TalosClientOptions = EndpointPoolOptions;

export class TalosClient {
  private readonly pool: EndpointPool;
  private readonly onWarning: (message: string) => void;

  constructor(config: Config, opts: TalosClientOptions) {
    this.pool = new EndpointPool(config, opts);
    this.onWarning = opts.onWarning ?? (() => undefined);
  }

  /**
   * The member list as an endpoint's own etcd member sees it (like `talosctl etcd members`).
   * Any control-plane member can answer, so when one endpoint's member cannot (its etcd is
   * down, say), the next endpoint is asked.
   */
  async memberList(signal?: AbortSignal): Promise<EtcdMember[]> {
    const failures: DefragError[] = [];
    for (let i = 0; i < this.pool.size; i += 1) {
      try {
        const reply = await this.pool.invoke(
          "EtcdMemberList",
          undefined,
          signal,
          (c, o) => c.etcdMemberList({ queryLocal: true }, o),
          this.pool.callTimeoutMs,
          true,
        );
        return this.single("EtcdMemberList", this.pool.label(), reply.messages).members;
      } catch (err) {
        const e = DefragError.from(err);
        // invoke() already tried every endpoint after a transport failure.
        if (failsEverywhere(e) || e.kind === "unreachable") throw e;
        failures.push(e);
        this.onWarning(`the member list could not be read through ${e.node ?? "an endpoint"}: ${e.message}`);
        this.pool.rotate();
      }
    }
    const last = failures.at(-1);
    throw last ?? new DefragError("internal", "no endpoint configured");
  }

  async status(node: string, signal?: AbortSignal): Promise<EtcdMemberStatus> {
    const reply = await this.pool.invoke("EtcdStatus", node, signal, (c, o) => c.etcdStatus({}, o));
    const entry = this.single("EtcdStatus", node, reply.messages);
    if (entry.memberStatus === undefined) {
      throw new DefragError("etcd", "EtcdStatus returned no member status", { node });
    }
    return entry.memberStatus;
  }

  /** Alarms are cluster state: any member lists all of them; undefined `node` asks the endpoint's own. */
  async alarms(node: string | undefined, signal?: AbortSignal): Promise<MemberAlarm[]> {
    const reply = await this.pool.invoke("EtcdAlarmList", node, signal, (c, o) => c.etcdAlarmList({}, o));
    return this.single("EtcdAlarmList", node ?? this.pool.label(), reply.messages).memberAlarms.map(toAlarm);
  }

  /** Disarms EVERY alarm in the cluster (Talos gives no per-alarm choice); returns what it disarmed. */
  async disarmAlarms(node: string, signal?: AbortSignal): Promise<MemberAlarm[]> {
    const reply = await this.pool.invoke("EtcdAlarmDisarm", node, signal, (c, o) => c.etcdAlarmDisarm({}, o));
    return this.single("EtcdAlarmDisarm", node, reply.messages).memberAlarms.map(toAlarm);
  }

  /**
   * Defragments one member. `timeoutMs` is this member's own deadline; when it
   * passes, etcd goes on defragmenting regardless, which the caller must handle.
   */
  async defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const reply = await this.pool.invoke(
      "EtcdDefragment",
      node,
      opts.signal,
      (c, o) => c.etcdDefragment({}, o),
      opts.timeoutMs,
      false,
    );
    this.single("EtcdDefragment", node, reply.messages);
  }

  /**
   * The last `tailLines` lines of the node's etcd service log (what `talosctl logs etcd
   * --tail N` shows), as one text: the stream's chunks do not follow line breaks.
   */
  async etcdLog(node: string, tailLines: number, signal?: AbortSignal): Promise<string> {
    return this.pool.invoke("Logs", node, signal, async (c, o) => {
      const chunks: Uint8Array[] = [];
      await streamEtcdLog(c, o, node, { follow: false, tailLines }, (bytes) => chunks.push(bytes));
      return Buffer.concat(chunks).toString("utf8");
    });
  }

  /**
   * Follows the node's etcd service log (what `talosctl logs -f etcd --tail N` shows): the last
   * `tailLines` lines, then every line etcd writes, handed to `onBytes` as they arrive (the
   * stream's chunks do not follow line breaks). Resolves only when `signal` aborts (as "aborted");
   * rejects when the stream breaks or ends. Not moved to another endpoint once it has begun.
   */
  async followEtcdLog(
    node: string,
    tailLines: number,
    onBytes: (bytes: Uint8Array) => void,
    signal: AbortSignal,
  ): Promise<void> {
    await this.pool.invoke(
      "Logs",
      node,
      signal,
      async (c, o) => {
        await streamEtcdLog(c, o, node, { follow: true, tailLines }, onBytes);
        throw new DefragError("unreachable", "the etcd log stream ended", { node });
      },
      "none",
      // Once lines have arrived, another endpoint would send the tail again: the caller reopens instead.
      false,
    );
  }

  /**
   * The node's etcd snapshot as machined streams it (etcd's Maintenance.Snapshot: the database, then
   * its sha256), handed to `write` chunk by chunk. Not retried on another endpoint once sent: a
   * half-written file is the caller's to discard.
   */
  async etcdSnapshot(
    node: string,
    write: (chunk: Uint8Array) => Promise<void>,
    opts: { timeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<void> {
    await this.pool.invoke(
      "EtcdSnapshot",
      node,
      opts.signal,
      async (c, o) => {
        for await (const data of c.etcdSnapshot({}, o)) {
          if (data.metadata !== undefined && data.metadata.error !== "") {
            throw new DefragError("etcd", `the etcd snapshot failed: ${data.metadata.error}`, { node });
          }
          await write(data.bytes);
        }
      },
      opts.timeoutMs,
      false,
    );
  }

  /**
   * etcd's extra command-line flags on the node (cluster.etcd.extraArgs), from its etcd spec
   * resource (`talosctl get etcdspecs`: namespace etcd, type EtcdSpecs.etcd.talos.dev, id etcd),
   * by flag name without dashes, each with its values. Talos before 1.13 keeps one value per flag.
   */
  async etcdExtraArgs(node: string, signal?: AbortSignal): Promise<Record<string, string[]>> {
    const reply = await this.pool.invoke("State.Get", node, signal, (_c, o, state) =>
      state.get({ namespace: ETCD_SPEC.namespace, type: ETCD_SPEC.type, id: ETCD_SPEC.id }, o),
    );
    const bytes = reply.resource?.spec?.protoSpec;
    if (bytes === undefined)
      throw new DefragError("etcd", "the etcd spec resource came without a spec", { node });
    return extraArgsOf(bytes, node);
  }

  /** The node's lifecycle, from its machine status resource (`talosctl get machinestatus`). */
  async machineStatus(node: string, signal?: AbortSignal): Promise<NodeLifecycle> {
    const reply = await this.pool.invoke("State.Get", node, signal, (_c, o, state) =>
      state.get({ namespace: MACHINE_STATUS.namespace, type: MACHINE_STATUS.type, id: MACHINE_STATUS.id }, o),
    );
    const bytes = reply.resource?.spec?.protoSpec;
    if (bytes === undefined)
      throw new DefragError("etcd", "the machine status resource came without a spec", { node });
    return lifecycleOf(bytes, node);
  }

  /** The filesystem holding `path` on the node (`talosctl df`; StorageService, Talos after 1.14). */
  async statfs(node: string, path: string, signal?: AbortSignal): Promise<DataDisk> {
    const reply = await this.pool.invoke("Statfs", node, signal, (_c, o, _state, storage) =>
      storage.statfs({ path }, o),
    );
    return { path, sizeBytes: Number(reply.size), availableBytes: Number(reply.available) };
  }

  /** Returns the name of the member that took over, or "" when the node was not the leader. */
  async forfeitLeadership(node: string, signal?: AbortSignal): Promise<string> {
    const reply = await this.pool.invoke("EtcdForfeitLeadership", node, signal, (c, o) =>
      c.etcdForfeitLeadership({}, o),
    );
    return this.single("EtcdForfeitLeadership", node, reply.messages).member;
  }

  close(): void {
    this.pool.close();
  }

  private single<T extends { metadata?: Metadata | undefined }>(
    method: TalosMethod,
    node: string,
    messages: readonly T[],
  ): T {
    const results = unpackMessages(method, messages, node);
    const first = results[0];
    if (first === undefined) throw new DefragError("etcd", `${method} returned an empty reply`, { node });
    if ("error" in first) throw first.error;
    return first.value;
  }
}

function toAlarm(a: EtcdMemberAlarm): MemberAlarm {
  const name = EtcdMemberAlarm_AlarmType[a.alarm] as AlarmName | undefined;
  return { memberId: a.memberId, alarm: name ?? "NONE" };
}

/** One Logs stream of the etcd service, each chunk to `onBytes`; an error machined reports in a chunk rejects. */
async function streamEtcdLog(
  c: Client<typeof MachineService>,
  o: CallOptions,
  node: string,
  opts: { follow: boolean; tailLines: number },
  onBytes: (bytes: Uint8Array) => void,
): Promise<void> {
  const request = { namespace: "system", id: "etcd", driver: ContainerDriver.CONTAINERD, ...opts };
  for await (const data of c.logs(request, o)) {
    if (data.metadata !== undefined && data.metadata.error !== "")
      throw new DefragError("etcd", `the etcd log could not be read: ${data.metadata.error}`, { node });
    onBytes(data.bytes);
  }
}
