// The Backend over etcd's own gRPC API, for kubeadm, k3s, RKE2 and any other etcd cluster: a
// member is its client URL, reached by its own pinned client (src/etcd/client.ts); other
// defragments are seen on its etcd_disk_defrag_inflight gauge (src/etcd/defrag-feed.ts); the
// quota comes from Status.dbSizeQuota (etcd 3.6+); alarms are disarmed one by one, NOSPACE only.

import type { Backend, Permissions } from "../core/backend.js";
import { DefragError, failsEverywhere } from "../core/errors.js";
import type { MemberConfig } from "../core/member-config.js";
import type {
  AlarmName,
  DataDisk,
  DefragFeedUpdate,
  MemberAlarm,
  MemberHashes,
  MemberInfo,
  MemberStatus,
  NodeLifecycle,
} from "../core/model.js";
import type { EtcdConfig } from "../config/etcd-config.js";
import { parseEtcdEndpoint } from "../config/etcd-config.js";
import { MemberClient } from "./client.js";
import { followDefragGauge, type WithoutGauge } from "./defrag-feed.js";
import { AlarmRequest_AlarmAction, AlarmType, type StatusResponse } from "./gen/etcdserverpb/rpc_pb.js";
import { MetricsReader } from "./metrics.js";
import { ETCD_WORDS } from "./words.js";

export interface EtcdBackendOptions {
  callTimeoutMs: number;
  withoutGauge: WithoutGauge;
  /** /metrics at http://HOST:metricsPort (etcd's --listen-metrics-urls) instead of on the client URL. */
  metricsPort?: number;
  onWarning?: (message: string) => void;
}

export class EtcdBackend implements Backend {
  readonly words = ETCD_WORDS;
  private readonly clients = new Map<string, MemberClient>();
  private readonly readers = new Map<string, MetricsReader>();
  /** Wake-ups of each member's feed: its gauge is read again at once when this run's call there ends. */
  private readonly pokes = new Map<string, Set<() => void>>();
  /** Members by id, from the last member list (MoveLeader names its target by id). */
  private known: MemberInfo[] = [];
  private readonly blindSaid = new Set<string>();

  constructor(
    private readonly config: EtcdConfig,
    private readonly opts: EtcdBackendOptions,
  ) {}

  /** The member's own pinned client; created on first use, never shared with another URL. */
  private client(node: string): MemberClient {
    let c = this.clients.get(node);
    if (c === undefined) {
      c = new MemberClient(node, this.config.tls, { callTimeoutMs: this.opts.callTimeoutMs });
      this.clients.set(node, c);
    }
    return c;
  }

  /**
   * The member list through the first endpoint that answers. Each member is reached at its own
   * client URL: the endpoint that is one of its client URLs, or that answered as it, else the
   * first client URL it advertises.
   */
  async members(signal?: AbortSignal): Promise<MemberInfo[]> {
    let last: DefragError | undefined;
    for (const endpoint of this.config.endpoints) {
      try {
        const reply = await this.client(endpoint).call(
          "MemberList",
          (o) => this.client(endpoint).cluster.memberList({ linearizable: false }, o),
          { signal },
        );
        const answeredAs = reply.header?.memberId;
        this.known = reply.members.map((m) => {
          const node = memberNode(
            m.clientURLs,
            this.config.endpoints,
            m.ID === answeredAs ? endpoint : undefined,
          );
          return {
            id: m.ID,
            name: m.name,
            peerUrls: [...m.peerURLs],
            clientUrls: [...m.clientURLs],
            isLearner: m.isLearner,
            node,
          };
        });
        return this.known;
      } catch (err) {
        last = DefragError.from(err);
        if (failsEverywhere(last)) throw last;
        this.opts.onWarning?.(`the member list could not be read through ${endpoint}: ${last.message}`);
      }
    }
    throw last ?? new DefragError("internal", "no etcd endpoint configured");
  }

  async status(node: string, signal?: AbortSignal): Promise<MemberStatus> {
    const sent = Date.now();
    const s = await this.rawStatus(node, signal);
    // etcd answers no Status while it defragments: one that waited most likely saw a defragment end,
    // so the member's gauge is read now rather than at its next turn.
    if (Date.now() - sent >= STATUS_WAITED_MS) this.poke(node);
    return statusOf(s);
  }

  /** Reads `node`'s gauge at once (its feed's wait cut short). */
  private poke(node: string): void {
    for (const wake of this.pokes.get(node) ?? []) wake();
  }

  private rawStatus(node: string, signal?: AbortSignal): Promise<StatusResponse> {
    const c = this.client(node);
    return c.call("Status", (o) => c.maintenance.status({}, o), { signal });
  }

  /** Alarms are cluster state: through the members in turn until one answers. */
  async alarms(signal?: AbortSignal): Promise<MemberAlarm[]> {
    return this.anyMember(
      "Alarm",
      async (c, o) => {
        const r = await c.maintenance.alarm({ action: AlarmRequest_AlarmAction.GET }, o);
        return r.alarms.map((a) => ({ memberId: a.memberID, alarm: alarmName(a.alarm) }));
      },
      signal,
    );
  }

  async defragment(node: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const c = this.client(node);
    try {
      await c.call("Defragment", (o) => c.maintenance.defragment({}, o), opts);
    } finally {
      this.poke(node);
    }
  }

  followDefrags(node: string, signal: AbortSignal): AsyncIterable<DefragFeedUpdate> {
    let reader = this.readers.get(node);
    if (reader === undefined) {
      reader = new MetricsReader(
        metricsUrl(node, this.opts.metricsPort),
        this.config.tls,
        this.opts.callTimeoutMs,
      );
      this.readers.set(node, reader);
    }
    const r = reader;
    return followDefragGauge(node, signal, {
      read: (s) => r.read(s),
      withoutGauge: this.opts.withoutGauge,
      now: () => Date.now(),
      onPoke: (wake) => {
        const set = this.pokes.get(node) ?? new Set();
        set.add(wake);
        this.pokes.set(node, set);
        return () => set.delete(wake);
      },
      onBlind: (why) => {
        if (this.blindSaid.has(node)) return;
        this.blindSaid.add(node);
        this.opts.onWarning?.(
          `${node}: ${why}; --without-defrag-gauge status-only: only the member answering its Status shows that no defragment runs there when a member is started, and one someone starts there later is not seen`,
        );
      },
    });
  }

  async snapshot(
    node: string,
    write: (chunk: Uint8Array) => Promise<void>,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<void> {
    const c = this.client(node);
    await c.call(
      "Snapshot",
      async (o) => {
        for await (const r of c.maintenance.snapshot({}, o)) await write(r.blob);
      },
      opts,
    );
  }

  /** The quota etcd reports in Status (3.6+); before 3.6 etcd tells no flag over its API. */
  async memberConfig(node: string, signal?: AbortSignal): Promise<MemberConfig> {
    const s = await this.rawStatus(node, signal);
    if (s.dbSizeQuota > 0n)
      return { quotaBytes: Number(s.dbSizeQuota), startupDefrag: [], flagsUnknown: true };
    throw new DefragError(
      "etcd",
      `etcd ${s.version} at ${node} does not report its quota (Status.dbSizeQuota is etcd 3.6+)`,
      { node },
    );
  }

  /** Not a node's: etcd knows nothing of the machine it runs on (one reason for every member). */
  nodeLifecycle(): Promise<{ lifecycle: NodeLifecycle } | { unsupported: string }> {
    return Promise.resolve({
      unsupported: "etcd's API does not say whether a member's machine is being upgraded or rebooted",
    });
  }

  /** Not a node's: etcd does not report its data directory's filesystem (one reason for every member). */
  dataDisk(): Promise<{ disk: DataDisk } | { unsupported: string }> {
    return Promise.resolve({
      unsupported: "etcd's API does not report the free space of a member's data directory",
    });
  }

  /** etcd's MoveLeader, sent to the leader itself, to the first of `prefer` (healthy, defragmented first). */
  async forfeitLeadership(
    node: string,
    opts: { prefer: readonly bigint[]; signal?: AbortSignal } = { prefer: [] },
  ): Promise<string> {
    const s = await this.rawStatus(node, opts.signal);
    const self = s.header?.memberId ?? 0n;
    if (s.leader !== self) return "";
    const target = opts.prefer.find((id) => id !== self);
    if (target === undefined)
      throw new DefragError("refused", `no healthy member to hand leadership to from ${node}`, {
        node,
        hint: "every other voting member must answer and be caught up; check them and run again",
      });
    const c = this.client(node);
    await c.call("MoveLeader", (o) => c.maintenance.moveLeader({ targetID: target }, o), opts);
    return this.known.find((m) => m.id === target)?.name ?? target.toString(16);
  }

  /** etcd disarms alarm by alarm: each NOSPACE one, and nothing else. */
  async disarmNospace(signal?: AbortSignal): Promise<MemberAlarm[]> {
    const nospace = (await this.alarms(signal)).filter((a) => a.alarm === "NOSPACE");
    for (const a of nospace)
      await this.anyMember(
        "Alarm",
        (c, o) =>
          c.maintenance.alarm(
            { action: AlarmRequest_AlarmAction.DEACTIVATE, memberID: a.memberId, alarm: AlarmType.NOSPACE },
            o,
          ),
        signal,
      );
    return nospace;
  }

  /**
   * Without etcd's auth, every certificate etcd trusts may do everything; with it, maintenance calls
   * need the root role, which only trying tells: a denial is then reported by the call itself.
   */
  permissions(): Promise<Permissions> {
    return Promise.resolve({ defragment: { allowed: true }, moveLeadership: { allowed: true } });
  }

  /**
   * HashKV of every member at one revision: `revision`, else the lowest current revision among
   * them (every member has applied it). Each answer must be at the same compaction for the hashes
   * to compare.
   */
  async hashes(nodes: readonly string[], revision?: bigint, signal?: AbortSignal): Promise<MemberHashes> {
    let at = revision;
    if (at === undefined) {
      const heads = await Promise.all(nodes.map((n) => this.rawStatus(n, signal)));
      at = heads.reduce((min, s) => {
        const r = s.header?.revision ?? 0n;
        return r < min ? r : min;
      }, heads[0]?.header?.revision ?? 0n);
    }
    try {
      return agreeing(at, await this.hashKV(nodes, at, signal));
    } catch (err) {
      if (!COMPACTED.test(DefragError.from(err).message)) throw err;
      // The revision asked for was compacted away since: the members at one they all have now.
      if (revision !== undefined) return this.hashes(nodes, undefined, signal);
      // etcd hashes only above its compaction: compacted up to the current revision (--compact, no
      // write since), the current revision is hashed (0), and must be the same on every member.
      const replies = await this.hashKV(nodes, 0n, signal);
      const revisions = new Set(replies.map((r) => r.revision));
      const [only] = revisions;
      if (revisions.size !== 1 || only === undefined)
        throw new DefragError(
          "etcd",
          `the members answered HashKV at different revisions (${[...revisions].join(", ")}) right after a compaction: writes came in between`,
          { hint: "run again" },
        );
      return agreeing(only, replies);
    }
  }

  private hashKV(
    nodes: readonly string[],
    revision: bigint,
    signal?: AbortSignal,
  ): Promise<{ node: string; hash: number; compactRevision: bigint; revision: bigint }[]> {
    return Promise.all(
      nodes.map(async (node) => {
        const c = this.client(node);
        const r = await c.call("HashKV", (o) => c.maintenance.hashKV({ revision }, o), { signal });
        return { node, hash: r.hash, compactRevision: r.compactRevision, revision: r.header?.revision ?? 0n };
      }),
    );
  }

  /** Compacts etcd's history to the current revision (physical: applied before it returns). */
  async compact(signal?: AbortSignal): Promise<{ revision: bigint }> {
    return this.anyMember(
      "Compact",
      async (c, o) => {
        const head = await c.maintenance.status({}, o);
        const revision = head.header?.revision ?? 0n;
        try {
          await c.kv.compact({ revision, physical: true }, o);
        } catch (err) {
          // Compacted up to here already (no write since the last compaction): nothing left to do.
          if (!COMPACTED.test(err instanceof Error ? err.message : String(err))) throw err;
        }
        return { revision };
      },
      signal,
    );
  }

  /** A cluster-wide call through the members in turn (the last member list, else the endpoints). */
  private async anyMember<T>(
    method: "Alarm" | "Compact",
    run: (c: MemberClient, o: Parameters<Parameters<MemberClient["call"]>[1]>[0]) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const nodes = this.known.flatMap((m) => (m.node === undefined || m.isLearner ? [] : [m.node]));
    let last: DefragError | undefined;
    for (const node of nodes.length > 0 ? nodes : this.config.endpoints) {
      const c = this.client(node);
      try {
        return await c.call(method, (o) => run(c, o), { signal });
      } catch (err) {
        last = DefragError.from(err);
        if (failsEverywhere(last)) throw last;
      }
    }
    throw last ?? new DefragError("internal", "no etcd member to call");
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    for (const r of this.readers.values()) r.close();
  }
}

/**
 * Where a member is reached: the endpoint given for it (one of its client URLs), else the endpoint
 * that answered as it, else the first of its advertised client URLs with the endpoints' scheme that is
 * reachable from here as they are (a loopback URL only when the endpoints are loopback too: kubeadm
 * and k3s members may advertise https://127.0.0.1:2379 beside their node's address).
 */
export function memberNode(
  clientUrls: readonly string[],
  endpoints: readonly string[],
  answeredAs: string | undefined,
): string | undefined {
  const https = endpoints.some((e) => e.startsWith("https:"));
  const urls = clientUrls.flatMap((u) => {
    try {
      return [parseEtcdEndpoint(u, https)];
    } catch {
      return [];
    }
  });
  const given = endpoints.find((e) => urls.includes(e));
  if (given !== undefined) return given;
  if (answeredAs !== undefined) return answeredAs;
  const scheme = https ? "https:" : "http:";
  const loopback = (u: string): boolean => /^(127\.|\[::1\]$|localhost$)/.test(new URL(u).hostname);
  const local = endpoints.every(loopback);
  const fits = (u: string): boolean => new URL(u).protocol === scheme && (local || !loopback(u));
  return urls.find(fits) ?? urls.find((u) => new URL(u).protocol === scheme) ?? urls[0];
}

/** A Status slower than this waited for something: on etcd, most likely a defragment's end. */
const STATUS_WAITED_MS = 100;

/** Where a member's /metrics is read: its client URL, or plain http on its host at `port`. */
export function metricsUrl(node: string, port: number | undefined): string {
  if (port === undefined) return node;
  const url = new URL(node);
  return `http://${url.hostname}:${port}`;
}

/** etcd's words for a revision compacted away (mvcc.ErrCompacted). */
const COMPACTED = /required revision has been compacted/;

/** The members' hashes at `revision`, all at one compaction (else they do not compare). */
function agreeing(
  revision: bigint,
  replies: { node: string; hash: number; compactRevision: bigint }[],
): MemberHashes {
  const compactions = new Set(replies.map((r) => r.compactRevision));
  if (compactions.size > 1)
    throw new DefragError(
      "etcd",
      `the members answered HashKV at revision ${revision} at different compactions (${[...compactions].join(", ")}): a compaction was being applied`,
      { hint: "run again" },
    );
  return {
    revision,
    compactRevision: replies[0]?.compactRevision ?? 0n,
    hashes: replies.map(({ node, hash }) => ({ node, hash })),
  };
}

function statusOf(s: StatusResponse): MemberStatus {
  return {
    memberId: s.header?.memberId ?? 0n,
    leaderId: s.leader,
    dbSize: Number(s.dbSize),
    dbSizeInUse: Number(s.dbSizeInUse),
    raftTerm: s.raftTerm,
    raftIndex: s.raftIndex,
    raftAppliedIndex: s.raftAppliedIndex,
    isLearner: s.isLearner,
    protocolVersion: s.version,
    storageVersion: s.storageVersion,
    errors: [...s.errors],
  };
}

function alarmName(a: AlarmType): AlarmName {
  return a === AlarmType.NOSPACE ? "NOSPACE" : a === AlarmType.CORRUPT ? "CORRUPT" : "NONE";
}
