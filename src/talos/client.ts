// The Talos API client: one mutual-TLS HTTP/2 connection per endpoint, every
// call aimed at one node with the `node` metadata (apid's one-to-one proxying),
// failover to the next endpoint when one cannot be reached, and a deadline on
// every call except EtcdDefragment.

import { createClient, type CallOptions, type Client } from "@connectrpc/connect";

import type { Config } from "../config/config.js";
import { endpointAddress, type Endpoint } from "../config/endpoints.js";
import { DefragError, failsEverywhere } from "../core/errors.js";
import type { AlarmName, MemberAlarm } from "../core/model.js";
import { callError, endpointError, transportFailure } from "./errors.js";
import {
  EtcdMemberAlarm_AlarmType,
  MachineService,
  type EtcdMember,
  type EtcdMemberAlarm,
  type EtcdMemberStatus,
} from "./gen/machine/machine_pb.js";
import { ContainerDriver, type Metadata } from "./gen/common/common_pb.js";
import { State } from "./gen/cosi/state_pb.js";
import { SpecSpecSchema } from "./gen/resource/etcd_pb.js";
import { fromBinary } from "@bufbuild/protobuf";
import type { TalosMethod } from "./rbac.js";
import { unpackMessages } from "./replies.js";
import { grpcConnection, type EndpointConnection } from "./session.js";

export interface TalosClientOptions {
  /** Deadline of every call but EtcdDefragment (apid adds none and would wait for a hung etcd forever). */
  callTimeoutMs: number;
  /** How long to wait for a TCP + TLS connection to one endpoint. */
  connectTimeoutMs?: number;
  /** Told once per endpoint when the client moves away from it. */
  onWarning?: (message: string) => void;
  /** Opens one endpoint's connection; tests pass in-memory ones. Default: mutual TLS over HTTP/2 from the config. */
  connect?: (endpoint: Endpoint) => EndpointConnection;
  /** The clock of the endpoint backoff (ms since epoch); tests pass a fake one. */
  now?: () => number;
}

interface Connection {
  address: string;
  manager: EndpointConnection["manager"];
  client: Client<typeof MachineService>;
  /** COSI's resource state (what `talosctl get` reads), proxied by apid like the machine API. */
  state: Client<typeof State>;
  /** Skip this endpoint until then (ms since epoch) after it failed. */
  downUntil: number;
  warned: boolean;
}

/** How long an endpoint that could not be reached is passed over before it is tried again. */
const ENDPOINT_BACKOFF_MS = 15_000;

export class TalosClient {
  private readonly connections: Connection[];
  private preferred = 0;
  private readonly callTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly onWarning: (message: string) => void;
  private readonly now: () => number;
  /** Our certificate is not from the configured CA: a reset after the handshake is most likely a rejection. */
  private readonly certSuspect: boolean;

  constructor(config: Config, opts: TalosClientOptions) {
    this.callTimeoutMs = opts.callTimeoutMs;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.onWarning = opts.onWarning ?? (() => undefined);
    this.now = opts.now ?? (() => Date.now());
    this.certSuspect = !config.certIssuedByCa;
    const connect = opts.connect ?? ((endpoint: Endpoint) => grpcConnection(config, endpoint));
    this.connections = config.endpoints.map((endpoint) => {
      const { manager, transport } = connect(endpoint);
      return {
        address: endpointAddress(endpoint),
        manager,
        client: createClient(MachineService, transport),
        state: createClient(State, transport),
        downUntil: 0,
        warned: false,
      };
    });
  }

  /**
   * The member list as an endpoint's own etcd member sees it (like `talosctl etcd members`).
   * Any control-plane member can answer, so when one endpoint's member cannot (its etcd is
   * down, say), the next endpoint is asked.
   */
  async memberList(signal?: AbortSignal): Promise<EtcdMember[]> {
    const failures: DefragError[] = [];
    for (let i = 0; i < this.connections.length; i += 1) {
      try {
        const reply = await this.invoke(
          "EtcdMemberList",
          undefined,
          signal,
          (c, o) => c.etcdMemberList({ queryLocal: true }, o),
          this.callTimeoutMs,
          true,
        );
        return this.single("EtcdMemberList", this.endpointLabel(), reply.messages).members;
      } catch (err) {
        const e = DefragError.from(err);
        // invoke() already tried every endpoint after a transport failure.
        if (failsEverywhere(e) || e.kind === "unreachable") throw e;
        failures.push(e);
        this.onWarning(`the member list could not be read through ${e.node ?? "an endpoint"}: ${e.message}`);
        this.preferred = (this.preferred + 1) % this.connections.length;
      }
    }
    const last = failures.at(-1);
    throw last ?? new DefragError("internal", "no endpoint configured");
  }

  async status(node: string, signal?: AbortSignal): Promise<EtcdMemberStatus> {
    const reply = await this.invoke("EtcdStatus", node, signal, (c, o) => c.etcdStatus({}, o));
    const entry = this.single("EtcdStatus", node, reply.messages);
    if (entry.memberStatus === undefined) {
      throw new DefragError("etcd", "EtcdStatus returned no member status", { node });
    }
    return entry.memberStatus;
  }

  /** Alarms are cluster state: any member lists all of them; undefined `node` asks the endpoint's own. */
  async alarms(node: string | undefined, signal?: AbortSignal): Promise<MemberAlarm[]> {
    const reply = await this.invoke("EtcdAlarmList", node, signal, (c, o) => c.etcdAlarmList({}, o));
    return this.single("EtcdAlarmList", node ?? this.endpointLabel(), reply.messages).memberAlarms.map(
      toAlarm,
    );
  }

  /** Disarms EVERY alarm in the cluster (Talos gives no per-alarm choice); returns what it disarmed. */
  async disarmAlarms(node: string, signal?: AbortSignal): Promise<MemberAlarm[]> {
    const reply = await this.invoke("EtcdAlarmDisarm", node, signal, (c, o) => c.etcdAlarmDisarm({}, o));
    return this.single("EtcdAlarmDisarm", node, reply.messages).memberAlarms.map(toAlarm);
  }

  /**
   * Defragments one member. `timeoutMs` is this member's own deadline; when it
   * passes, etcd goes on defragmenting regardless, which the caller must handle.
   */
  async defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const reply = await this.invoke(
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
    return this.invoke("Logs", node, signal, async (c, o) => {
      const chunks: Uint8Array[] = [];
      const request = {
        namespace: "system",
        id: "etcd",
        driver: ContainerDriver.CONTAINERD,
        follow: false,
        tailLines,
      };
      for await (const data of c.logs(request, o)) {
        if (data.metadata !== undefined && data.metadata.error !== "") {
          throw new DefragError("etcd", `the etcd log could not be read: ${data.metadata.error}`, { node });
        }
        chunks.push(data.bytes);
      }
      return Buffer.concat(chunks).toString("utf8");
    });
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
    await this.invoke(
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
    const reply = await this.invoke("State.Get", node, signal, (_c, o, state) =>
      state.get({ namespace: ETCD_SPEC.namespace, type: ETCD_SPEC.type, id: ETCD_SPEC.id }, o),
    );
    const bytes = reply.resource?.spec?.protoSpec;
    if (bytes === undefined)
      throw new DefragError("etcd", "the etcd spec resource came without a spec", { node });
    return extraArgsOf(bytes, node);
  }

  /** Returns the name of the member that took over, or "" when the node was not the leader. */
  async forfeitLeadership(node: string, signal?: AbortSignal): Promise<string> {
    const reply = await this.invoke("EtcdForfeitLeadership", node, signal, (c, o) =>
      c.etcdForfeitLeadership({}, o),
    );
    return this.single("EtcdForfeitLeadership", node, reply.messages).member;
  }

  /** Names the node behind the endpoint last used, for replies to calls without a `node`. */
  private endpointLabel(): string {
    return this.connections[this.preferred]?.address ?? "(endpoint)";
  }

  close(): void {
    for (const c of this.connections) c.manager.abort();
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

  /**
   * Runs one call through the first endpoint that can be reached. Reads move on
   * to the next endpoint after any transport failure; a defragment only when
   * the connection could not even be opened, because once sent it may be running.
   */
  private async invoke<T>(
    method: TalosMethod,
    node: string | undefined,
    signal: AbortSignal | undefined,
    call: (
      client: Client<typeof MachineService>,
      opts: CallOptions,
      state: Client<typeof State>,
    ) => Promise<T>,
    timeoutMs: number = this.callTimeoutMs,
    idempotent = true,
  ): Promise<T> {
    const failures: DefragError[] = [];
    for (const conn of this.order()) {
      signal?.throwIfAborted();
      const opened = await this.open(conn, signal);
      if (opened !== undefined) {
        failures.push(opened);
        this.markDown(conn, opened);
        continue;
      }
      const headers: Record<string, string> = node === undefined ? {} : { node };
      try {
        const result = await call(
          conn.client,
          { headers, timeoutMs, ...(signal ? { signal } : {}) },
          conn.state,
        );
        this.preferred = this.connections.indexOf(conn);
        return result;
      } catch (err) {
        if (signal?.aborted)
          throw new DefragError("aborted", `${method} was cancelled: stop requested`, { node });
        const mapped = callError(
          method,
          node ?? `the node behind endpoint ${conn.address}`,
          conn.address,
          err,
          this.certSuspect,
        );
        if (
          idempotent &&
          transportFailure(err, this.certSuspect) !== undefined &&
          mapped.kind !== "tls" &&
          !signal?.aborted
        ) {
          failures.push(mapped);
          this.markDown(conn, mapped);
          continue;
        }
        throw mapped;
      }
    }
    throw this.allFailed(method, node, failures);
  }

  private order(): Connection[] {
    const now = this.now();
    const n = this.connections.length;
    const rotated = Array.from({ length: n }, (_, i) => this.connections[(this.preferred + i) % n]).filter(
      (c): c is Connection => c !== undefined,
    );
    const up = rotated.filter((c) => c.downUntil <= now);
    // When every endpoint failed recently, try them all again rather than give up.
    return up.length > 0 ? [...up, ...rotated.filter((c) => c.downUntil > now)] : rotated;
  }

  private async open(conn: Connection, signal: AbortSignal | undefined): Promise<DefragError | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => {
        resolve("timeout");
      }, this.connectTimeoutMs);
    });
    // Removed in `finally`: one signal lives through every call of a run, so a listener left per call piles up.
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<"aborted">((resolve) => {
      onAbort = () => {
        resolve("aborted");
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const state = await Promise.race([conn.manager.connect(), timeout, aborted]);
      if (state === "aborted") throw new DefragError("aborted", "stopped before the call was sent");
      if (state === "timeout") {
        conn.manager.abort();
        return new DefragError(
          "unreachable",
          `cannot reach endpoint ${conn.address}: no connection after ${this.connectTimeoutMs} ms`,
          {
            endpoint: conn.address,
            hint: "check that the endpoint is a running control-plane node and port 50000 is open",
          },
        );
      }
      if (state === "error") return endpointError(conn.address, conn.manager.error(), this.certSuspect);
      return undefined;
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
    }
  }

  private markDown(conn: Connection, err: DefragError): void {
    conn.downUntil = this.now() + ENDPOINT_BACKOFF_MS;
    if (!conn.warned && this.connections.length > 1) {
      conn.warned = true;
      this.onWarning(`${err.message}; trying the other endpoints`);
    }
  }

  private allFailed(method: TalosMethod, node: string | undefined, failures: DefragError[]): DefragError {
    const first = failures[0];
    if (first === undefined) return new DefragError("internal", `${method}: no endpoint configured`);
    if (failures.length === 1)
      return new DefragError(first.kind, first.message, {
        node,
        endpoint: first.endpoint,
        hint: first.hint,
        cause: first,
      });
    const kind = failures.every((f) => f.kind === "tls") ? "tls" : "unreachable";
    return new DefragError(kind, `no endpoint could be used: ${failures.map((f) => f.message).join("; ")}`, {
      node,
      hint: first.hint,
      cause: first,
    });
  }
}

function toAlarm(a: EtcdMemberAlarm): MemberAlarm {
  const name = EtcdMemberAlarm_AlarmType[a.alarm] as AlarmName | undefined;
  return { memberId: a.memberId, alarm: name ?? "NONE" };
}

/** The etcd spec resource's pointer (Talos pkg/machinery/resources/etcd: NamespaceName, SpecType, SpecID). */
export const ETCD_SPEC = { namespace: "etcd", type: "EtcdSpecs.etcd.talos.dev", id: "etcd" } as const;

/** The extra args of an encoded talos.resource.definitions.etcd.SpecSpec (field 7, or field 4 before Talos 1.13). */
export function extraArgsOf(protoSpec: Uint8Array, node: string): Record<string, string[]> {
  let spec;
  try {
    spec = fromBinary(SpecSpecSchema, protoSpec);
  } catch (err) {
    throw new DefragError("etcd", `the etcd spec resource does not decode: ${(err as Error).message}`, {
      node,
      cause: err,
    });
  }
  const args: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(spec.extraArgsLegacy)) args[name] = [value];
  for (const [name, values] of Object.entries(spec.extraArgs)) args[name] = [...values.values];
  return args;
}
