// A client bound to exactly one etcd member's client URL (plaintext h2c on loopback, or TLS with
// a client certificate), over our etcd proto subset. Never load-balanced, never retried.

import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { EndpointSession } from "../../src/net/session.js";

import {
  AlarmRequest_AlarmAction,
  AlarmType,
  Cluster,
  KV,
  Maintenance,
} from "../../src/etcd/gen/etcdserverpb/rpc_pb.js";
import type {
  EtcdAlarm,
  EtcdAlarmType,
  EtcdMemberClient,
  EtcdMemberInfo,
  EtcdMemberStatusReply,
} from "./etcd/member-client.js";

const enc = new TextEncoder();

export class EtcdClient implements EtcdMemberClient {
  readonly kv: Client<typeof KV>;
  readonly cluster: Client<typeof Cluster>;
  readonly maintenance: Client<typeof Maintenance>;
  private readonly session: EndpointSession;

  constructor(
    readonly clientUrl: string,
    tls?: { caPem: string; certPem: string; keyPem: string },
  ) {
    this.session = new EndpointSession(
      clientUrl,
      undefined,
      tls && { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, servername: "" },
    );
    const transport = createGrpcTransport({ baseUrl: clientUrl, sessionManager: this.session });
    this.kv = createClient(KV, transport);
    this.cluster = createClient(Cluster, transport);
    this.maintenance = createClient(Maintenance, transport);
  }

  async status(signal?: AbortSignal): Promise<EtcdMemberStatusReply> {
    const s = await this.maintenance.status({}, signal ? { signal } : {});
    return {
      memberId: s.header?.memberId ?? 0n,
      leader: s.leader,
      version: s.version,
      storageVersion: s.storageVersion,
      dbSize: s.dbSize,
      dbSizeInUse: s.dbSizeInUse,
      dbSizeQuota: s.dbSizeQuota,
      raftIndex: s.raftIndex,
      raftTerm: s.raftTerm,
      raftAppliedIndex: s.raftAppliedIndex,
      errors: [...s.errors],
      isLearner: s.isLearner,
    };
  }

  async defragment(signal?: AbortSignal): Promise<void> {
    await this.maintenance.defragment({}, signal ? { signal } : {});
  }

  async *snapshot(signal?: AbortSignal): AsyncIterable<Uint8Array> {
    for await (const r of this.maintenance.snapshot({}, signal ? { signal } : {})) yield r.blob;
  }

  async alarmList(signal?: AbortSignal): Promise<EtcdAlarm[]> {
    const r = await this.maintenance.alarm(
      { action: AlarmRequest_AlarmAction.GET },
      signal ? { signal } : {},
    );
    return r.alarms.map((a) => ({ memberId: a.memberID, alarm: alarmName(a.alarm) }));
  }

  async alarmActivate(
    alarm: Exclude<EtcdAlarmType, "NONE">,
    memberId: bigint,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.maintenance.alarm(
      { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: memberId, alarm: AlarmType[alarm] },
      signal ? { signal } : {},
    );
  }

  /** Like clientv3's AlarmDisarm with an empty member: list every alarm, then deactivate each. */
  async alarmDisarmAll(signal?: AbortSignal): Promise<EtcdAlarm[]> {
    const alarms = await this.alarmList(signal);
    for (const a of alarms) {
      await this.maintenance.alarm(
        { action: AlarmRequest_AlarmAction.DEACTIVATE, memberID: a.memberId, alarm: AlarmType[a.alarm] },
        signal ? { signal } : {},
      );
    }
    return alarms;
  }

  async memberList(signal?: AbortSignal): Promise<EtcdMemberInfo[]> {
    const r = await this.cluster.memberList({}, signal ? { signal } : {});
    return r.members.map((m) => ({
      id: m.ID,
      name: m.name,
      peerUrls: [...m.peerURLs],
      clientUrls: [...m.clientURLs],
      isLearner: m.isLearner,
    }));
  }

  async moveLeader(targetMemberId: bigint, signal?: AbortSignal): Promise<void> {
    await this.maintenance.moveLeader({ targetID: targetMemberId }, signal ? { signal } : {});
  }

  async put(key: string, value: Uint8Array): Promise<bigint> {
    const r = await this.kv.put({ key: enc.encode(key), value });
    return r.header?.revision ?? 0n;
  }

  /** Deletes every key with the prefix; returns the revision after. */
  async deletePrefix(prefix: string): Promise<bigint> {
    const r = await this.kv.deleteRange({ key: enc.encode(prefix), rangeEnd: prefixEnd(enc.encode(prefix)) });
    return r.header?.revision ?? 0n;
  }

  async compact(revision: bigint): Promise<void> {
    await this.kv.compact({ revision, physical: true });
  }

  close(): void {
    this.session.abort();
  }
}

/** The end of the range of keys with this prefix (etcd's convention). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i -= 1) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

function alarmName(a: AlarmType): EtcdAlarmType {
  return a === AlarmType.NOSPACE ? "NOSPACE" : a === AlarmType.CORRUPT ? "CORRUPT" : "NONE";
}
