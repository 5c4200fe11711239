// A Talos API test server: stands in for apid + machined on one node, in front
// of that node's real etcd member. Mutual TLS like apid (Ed25519, client EKU
// exactly clientAuth, roles from the certificate's Organization), Talos's RBAC
// table, `node`/`nodes` routing with forwarding to the other nodes' servers and
// one-to-many aggregation as apid does it, fault injection, and a journal.

import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type ServerHttp2Session,
} from "node:http2";
import { open, stat, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { isIP } from "node:net";
import type { TLSSocket } from "node:tls";

import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type MessageShape,
} from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { createAsyncIterable } from "@connectrpc/connect/protocol";

import { DataSchema, EmptyResponseSchema, EmptySchema } from "../../src/talos/gen/common/common_pb.js";
import { EndpointSession } from "../../src/net/session.js";
import {
  EtcdMemberAlarm_AlarmType,
  MachineService,
  type LogsRequestSchema,
} from "../../src/talos/gen/machine/machine_pb.js";
import { MachineService as HarnessOnlyService } from "./talospb/gen/machine/harness_pb.js";
import { State, type GetRequestSchema } from "../../src/talos/gen/cosi/state_pb.js";
import { SpecSpecSchema } from "../../src/talos/gen/resource/etcd_pb.js";
import { RuntimeMachineStage } from "../../src/talos/gen/resource/enums_pb.js";
import { MachineStatusSpecSchema } from "../../src/talos/gen/resource/runtime_pb.js";
import { StorageService } from "../../src/talos/gen/machine/storage_pb.js";
import type { CertAndKey } from "./certs.js";
import { nodeKeyPem } from "./certs.js";
import type { EtcdAlarm, EtcdMemberClient } from "./etcd/member-client.js";
import type { Journal } from "./journal.js";
import { now, type JournalEntry } from "./journal.js";

const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

/**
 * Talos's RBAC (machined's rules, Talos >= 1.10.1): who may call what. Written out here
 * independently of src/talos/rbac.ts on purpose: the stand-in must not share the client's view.
 */
export const RBAC: Record<string, readonly string[]> = {
  EtcdMemberList: ["os:admin", "os:operator", "os:reader", "os:etcd:backup"],
  EtcdStatus: ["os:admin", "os:operator", "os:reader", "os:etcd:backup"],
  EtcdAlarmList: ["os:admin", "os:operator", "os:reader", "os:etcd:backup"],
  EtcdAlarmDisarm: ["os:admin", "os:operator"],
  EtcdDefragment: ["os:admin", "os:operator"],
  EtcdForfeitLeadership: ["os:admin"],
  Logs: ["os:admin", "os:operator", "os:reader"],
  EtcdSnapshot: ["os:admin", "os:operator", "os:etcd:backup"],
  ServiceList: ["os:admin", "os:operator", "os:reader"],
  Version: ["os:admin", "os:operator", "os:reader"],
  // cosi.resource.State/Get: os:reader and up; Talos's access policy then lets only os:admin read
  // sensitive resources, and the etcd spec is not one.
  Get: ["os:admin", "os:operator", "os:reader"],
  // machine.StorageService/Statfs (`talosctl df`, Talos after 1.14).
  Statfs: ["os:admin", "os:operator", "os:reader"],
};

/** How machined names each API in its "only available on control plane nodes" error. */
const API_NAME: Record<string, string> = {
  EtcdMemberList: "etcd members",
  EtcdStatus: "etcd status",
  EtcdAlarmList: "etcd alarm list",
  EtcdAlarmDisarm: "etcd alarm disarm",
  EtcdDefragment: "etcd defragment",
  EtcdForfeitLeadership: "etcd forfeit leadership",
};

const peerRolesKey = createContextKey<string[]>([], { description: "roles of the TLS peer" });

export interface TalosApiServerOptions {
  address: string;
  /** The Talos API port of every node (what forwarding dials). */
  port: number;
  /** Where this server listens, when not `port` (an extra endpoint, e.g. on ::1). */
  listenPort?: number;
  caPem: string;
  serverCert: CertAndKey;
  /** apid's own client certificate (role os:impersonator) for forwarding to other nodes. */
  forwardCert: CertAndKey;
  /** The node's etcd member; undefined for a worker. */
  etcd: EtcdMemberClient | undefined;
  /** Whether the node's etcd process is running (for ServiceList). */
  etcdRunning?: () => boolean;
  /** The node's etcd log (zap JSON lines), served by Logs as machined serves /var/log/etcd.log. */
  etcdLogFile?: string;
  /** cluster.etcd.extraArgs as the node's etcd spec resource carries them (etcd flags without dashes). */
  etcdExtraArgs?: Record<string, string[]>;
  journal: Journal;
}

type AnyMethod = DescMethodUnary;
type StreamMethod = DescMethodServerStreaming;

/** machined sends a log in chunks of at most this many bytes, cutting lines anywhere. */
const LOG_CHUNK_BYTES = 4096;
/** How often a followed log is looked at for what etcd appended. */
const LOG_FOLLOW_POLL_MS = 20;

export class TalosApiServer {
  readonly address: string;
  /** Extra latency before local handling, per method or "*" for all. */
  readonly latencyMs = new Map<string, number>();
  private readonly failures = new Map<string, { code: Code; message: string; always?: boolean }>();
  /** The log streams being followed, to break them on demand. */
  private readonly follows = new Set<AbortController>();
  /**
   * The etcd spec's extraArgs (served by State.Get for EtcdSpecs.etcd.talos.dev): the flags the
   * harness started etcd with; a test may change them to serve a spec etcd was not started with.
   */
  etcdExtraArgs: Record<string, string[]>;
  /**
   * The node's machine status (served by State.Get for MachineStatuses.runtime.talos.dev): RUNNING and
   * ready unless a test sets a stage (an upgrade, a reboot) and unmet conditions. Talos reports ready
   * with no unmet conditions in every stage but BOOTING and RUNNING, so setStage does too.
   */
  machineStatus: { stage: RuntimeMachineStage; ready: boolean; unmet: { name: string; reason: string }[] } = {
    stage: RuntimeMachineStage.MACHINE_STAGE_RUNNING,
    ready: true,
    unmet: [],
  };
  /** False: an older Talos, whose State service knows no machine status ("resource type is not supported"). */
  servesMachineStatus = true;
  /**
   * Statfs (StorageService, `talosctl df`): the real filesystem holding the etcd log's directory, unless
   * a test sets the available bytes; servesStatfs false is Talos 1.14 and older (unknown service).
   */
  diskAvailableBytes: number | undefined;
  servesStatfs = true;
  private server: Http2SecureServer | undefined;
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly forwarders = new Map<string, { transport: Transport; session: EndpointSession }>();

  constructor(private readonly opts: TalosApiServerOptions) {
    this.address = opts.address;
    this.etcdExtraArgs = { ...(opts.etcdExtraArgs ?? {}) };
  }

  /** The port it actually listens on. */
  get port(): number {
    const addr = this.server?.address();
    return typeof addr === "object" && addr !== null ? addr.port : (this.opts.listenPort ?? this.opts.port);
  }

  get isUp(): boolean {
    return this.server?.listening === true;
  }

  /** The next call of `method` handled locally fails with this status ("Get": COSI State.Get, the etcd spec). */
  failNext(method: string, code: Code, message: string): void {
    this.failures.set(method, { code, message });
  }

  /** Every call of `method` handled locally fails with this status, until clearFailure(method). */
  failAlways(method: string, code: Code, message: string): void {
    this.failures.set(method, { code, message, always: true });
  }

  clearFailure(method: string): void {
    this.failures.delete(method);
  }

  /** Every log stream being followed here ends with this error (machined's log reader failing). */
  breakLogStreams(code: Code, message: string): number {
    const n = this.follows.size;
    for (const f of this.follows) f.abort(new ConnectError(message, code));
    this.follows.clear();
    return n;
  }

  async up(): Promise<void> {
    if (this.isUp) return;
    const handler = connectNodeAdapter({
      routes: (router: ConnectRouter) => {
        // Two descriptors of Talos's one machine.MachineService: the product's RPCs and the harness-only ones.
        router.service(MachineService, this.implementation(MachineService.method));
        router.service(HarnessOnlyService, this.implementation(HarnessOnlyService.method));
        // COSI's state API (talosctl get), which machined serves and apid proxies like the machine API.
        router.service(State, this.implementation(State.method));
        router.service(StorageService, this.implementation(StorageService.method));
      },
      grpc: true,
      grpcWeb: false,
      connect: false,
      // apid and machined (grpc-go, gzip registered) compress a reply only when its request was
      // compressed, and Talos clients send uncompressed: the replies are uncompressed. Connect's
      // server would compress any reply over 1 KiB for a client that accepts gzip.
      acceptCompression: [],
      contextValues: (req) => {
        const values = createContextValues();
        const socket = (req as Http2ServerRequest).stream.session?.socket as TLSSocket | undefined;
        values.set(peerRolesKey, rolesOf(socket?.getPeerX509Certificate()?.subject ?? ""));
        return values;
      },
    });
    const server = createSecureServer(
      {
        ca: this.opts.caPem,
        cert: this.opts.serverCert.certPem,
        key: nodeKeyPem(this.opts.serverCert.keyPem),
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: "TLSv1.2",
        ALPNProtocols: ["h2"],
      },
      handler,
    );
    // apid fails the handshake for a client certificate whose EKU is not exactly
    // [clientAuth] ("certificate ... is missing the client auth extended key usage");
    // Node has no hook inside the handshake, so the connection is closed right after it.
    server.on("secureConnection", (socket: TLSSocket) => {
      const eku = socket.getPeerX509Certificate()?.keyUsage;
      if (eku?.length !== 1 || eku[0] !== CLIENT_AUTH) socket.destroy();
    });
    server.on("session", (session) => {
      this.sessions.add(session);
      session.on("close", () => this.sessions.delete(session));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(
        { host: this.address, port: this.opts.listenPort ?? this.opts.port, exclusive: true },
        () => {
          server.off("error", reject);
          resolve();
        },
      );
    });
    this.server = server;
  }

  /** Like apid stopping: connections refused until up(). */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    this.dropConnections();
    await closed;
  }

  /** Like apid restarting: every open connection drops, calls in flight on etcd go on. */
  dropConnections(): void {
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }

  async close(): Promise<void> {
    await this.down();
    for (const f of this.forwarders.values()) f.session.abort();
    this.forwarders.clear();
  }

  // ---------------------------------------------------------------------------

  private implementation(
    methods: Record<string, AnyMethod | StreamMethod>,
  ): Record<string, (req: unknown, ctx: HandlerContext) => unknown> {
    const impl: Record<string, (req: unknown, ctx: HandlerContext) => unknown> = {};
    for (const method of Object.values(methods)) {
      impl[method.localName] =
        method.methodKind === "server_streaming"
          ? (req, ctx) => this.routeStream(method, req as MessageShape<DescMessage>, ctx)
          : (req, ctx) => this.route(method, req as MessageShape<DescMessage>, ctx);
    }
    return impl;
  }

  /**
   * A server-streaming call (Logs): with `node`, apid proxies the stream one-to-one to that
   * node; without, machined answers locally. (apid's one-to-many streaming is not needed.)
   */
  private async *routeStream(
    method: StreamMethod,
    req: MessageShape<DescMessage>,
    ctx: HandlerContext,
  ): AsyncGenerator {
    const h = ctx.requestHeader;
    const node = h.get("node");
    const roles = this.callerRoles(ctx);
    const forwarding = h.get("proxyfrom") === null && node !== null;
    const target = forwarding ? splitHeader(node)[0] : undefined;
    const entry = this.opts.journal.begin({
      server: this.address,
      target: target ?? null,
      method: method.name,
      via: forwarding ? "forward" : "local",
      roles,
    });
    try {
      if (target !== undefined) {
        const stream = await this.forwarder(target).stream(
          method,
          ctx.signal,
          ctx.timeoutMs(),
          { proxyfrom: this.address, "talos-role": roles.join(",") },
          createAsyncIterable([req]),
        );
        for await (const message of stream.message) yield message;
      } else {
        yield* method.name === "EtcdSnapshot"
          ? this.serveSnapshot(roles, ctx.signal)
          : this.serveLogs(req as MessageShape<typeof LogsRequestSchema>, roles, ctx.signal);
      }
      finish(entry, "OK");
    } catch (err) {
      const e = ConnectError.from(err);
      finish(entry, Code[e.code], e.rawMessage);
      throw new ConnectError(e.rawMessage, e.code);
    }
  }

  /** The checks machined makes before a streaming call: RBAC, an injected failure, a delay. */
  private async admitStream(name: string, roles: string[]): Promise<void> {
    const delay = this.latencyMs.get(name) ?? this.latencyMs.get("*") ?? 0;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const allowed = RBAC[name] ?? [];
    if (!roles.some((r) => allowed.includes(r)))
      throw new ConnectError("not authorized", Code.PermissionDenied);
    const failure = this.failures.get(name);
    if (failure) {
      if (failure.always !== true) this.failures.delete(name);
      throw new ConnectError(failure.message, failure.code);
    }
  }

  /** machined's EtcdSnapshot: the local member's Maintenance.Snapshot, passed on chunk by chunk. */
  private async *serveSnapshot(
    roles: string[],
    signal: AbortSignal,
  ): AsyncGenerator<MessageShape<typeof DataSchema>> {
    await this.admitStream("EtcdSnapshot", roles);
    const etcd = this.opts.etcd;
    if (etcd === undefined)
      throw new ConnectError("etcd snapshot is only available on control plane nodes", Code.Unimplemented);
    try {
      for await (const blob of etcd.snapshot(signal)) yield create(DataSchema, { bytes: blob });
    } catch (err) {
      const message = err instanceof ConnectError ? err.rawMessage : (err as Error).message;
      throw new ConnectError(`failed reading etcd snapshot: ${message}`, Code.Unknown);
    }
  }

  /**
   * machined's Logs for the system namespace: the tail of the service's log file, in chunks; with
   * `follow`, then every byte appended to it as it comes, until the caller goes away.
   */
  private async *serveLogs(
    req: MessageShape<typeof LogsRequestSchema>,
    roles: string[],
    signal: AbortSignal,
  ): AsyncGenerator<MessageShape<typeof DataSchema>> {
    await this.admitStream("Logs", roles);
    if (req.namespace !== "system" || req.id !== "etcd")
      throw new ConnectError(
        `the test server serves only the etcd service's log, not ${req.namespace}/${req.id}`,
        Code.Unimplemented,
      );
    const file = this.opts.etcdLogFile;
    if (file === undefined)
      throw new ConnectError("open /var/log/etcd.log: no such file or directory", Code.Unknown);
    let bytes: Buffer;
    let end: number;
    try {
      end = (await stat(file)).size;
      bytes = await tailOf(file, req.tailLines, end);
    } catch {
      throw new ConnectError("open /var/log/etcd.log: no such file or directory", Code.Unknown);
    }
    for (let i = 0; i < bytes.length; i += LOG_CHUNK_BYTES) {
      yield create(DataSchema, { bytes: bytes.subarray(i, i + LOG_CHUNK_BYTES) });
    }
    if (!req.follow) return;
    // Following: what etcd appends, looked for often enough that a line arrives well within 100 ms.
    const broken = new AbortController();
    this.follows.add(broken);
    try {
      yield* this.followFile(file, end, AbortSignal.any([signal, broken.signal]));
    } finally {
      this.follows.delete(broken);
    }
    if (broken.signal.aborted) throw broken.signal.reason;
  }

  private async *followFile(
    file: string,
    from: number,
    signal: AbortSignal,
  ): AsyncGenerator<MessageShape<typeof DataSchema>> {
    let end = from;
    while (!signal.aborted) {
      await delay(LOG_FOLLOW_POLL_MS, undefined, { signal }).catch(() => undefined);
      const size = await stat(file).then(
        (s) => s.size,
        () => end,
      );
      if (size <= end) continue;
      const handle = await open(file, "r");
      try {
        const fresh = Buffer.alloc(size - end);
        await handle.read(fresh, 0, fresh.length, end);
        end = size;
        for (let i = 0; i < fresh.length; i += LOG_CHUNK_BYTES)
          yield create(DataSchema, { bytes: fresh.subarray(i, i + LOG_CHUNK_BYTES) });
      } finally {
        await handle.close();
      }
    }
  }

  private callerRoles(ctx: HandlerContext): string[] {
    const roles = ctx.values.get(peerRolesKey);
    const forwarded = ctx.requestHeader.get("talos-role");
    // Only a forwarding apid (role os:impersonator) may speak for someone else.
    if (roles.includes("os:impersonator") && forwarded !== null) return splitHeader(forwarded);
    return roles;
  }

  private async route(
    method: AnyMethod,
    req: MessageShape<DescMessage>,
    ctx: HandlerContext,
  ): Promise<unknown> {
    const h = ctx.requestHeader;
    const node = h.get("node");
    const nodes = h.get("nodes");
    const roles = this.callerRoles(ctx);
    if (h.get("proxyfrom") !== null || (node === null && nodes === null)) {
      return this.local(method, req, ctx, roles, null);
    }
    if (node !== null) {
      const targets = splitHeader(node);
      if (targets.length !== 1)
        throw new ConnectError("node metadata must be single-valued", Code.InvalidArgument);
      const target = targets[0] ?? "";
      const entry = this.opts.journal.begin({
        server: this.address,
        target,
        method: method.name,
        via: "forward",
        roles,
      });
      try {
        const reply = await this.forward(method, req, ctx, target, roles);
        finish(entry, "OK");
        return reply;
      } catch (err) {
        const e = ConnectError.from(err);
        finish(entry, Code[e.code], e.rawMessage);
        throw e;
      }
    }
    return this.aggregate(method, req, ctx, splitHeader(nodes ?? ""), roles);
  }

  /** apid's one-to-many proxying: per-target replies with metadata, failures as entries, overall OK. */
  private async aggregate(
    method: AnyMethod,
    req: MessageShape<DescMessage>,
    ctx: HandlerContext,
    targets: string[],
    roles: string[],
  ): Promise<unknown> {
    const entry = this.opts.journal.begin({
      server: this.address,
      target: targets.join(","),
      method: method.name,
      via: "aggregate",
      roles,
    });
    const blobs = await Promise.all(
      targets.map(async (target) => {
        try {
          const reply = await this.forward(method, req, ctx, target, roles);
          return appendInfo(toBinary(method.output, reply as MessageShape<DescMessage>), target);
        } catch (err) {
          const e = ConnectError.from(err);
          return toBinary(
            EmptyResponseSchema,
            create(EmptyResponseSchema, {
              messages: [
                create(EmptySchema, {
                  metadata: {
                    hostname: target,
                    error: e.message,
                    status: { code: e.code, message: e.rawMessage },
                  },
                }),
              ],
            }),
          );
        }
      }),
    );
    finish(entry, "OK");
    return fromBinary(method.output, concat(blobs));
  }

  private forwarder(target: string): Transport {
    const existing = this.forwarders.get(target);
    if (existing) return existing.transport;
    const host = isIP(target) === 6 ? `[${target}]` : target;
    const url = `https://${host}:${this.opts.port}`;
    const session = new EndpointSession(url, undefined, {
      ca: this.opts.caPem,
      cert: this.opts.forwardCert.certPem,
      key: nodeKeyPem(this.opts.forwardCert.keyPem),
      servername: isIP(target) === 0 ? target : "",
    });
    const transport = createGrpcTransport({ baseUrl: url, sessionManager: session });
    this.forwarders.set(target, { transport, session });
    return transport;
  }

  /** One-to-one proxying to the apid on `target`, passing its status through verbatim. */
  private async forward(
    method: AnyMethod,
    req: MessageShape<DescMessage>,
    ctx: HandlerContext,
    target: string,
    roles: string[],
  ): Promise<unknown> {
    if (/:\d+$/.test(target) && isIP(target) !== 6)
      throw new ConnectError("invalid target", Code.InvalidArgument);
    try {
      // The transport itself, not a client: it calls any method of either descriptor.
      const reply = await this.forwarder(target).unary(
        method,
        ctx.signal,
        ctx.timeoutMs(),
        { proxyfrom: this.address, "talos-role": roles.join(",") },
        req,
      );
      return reply.message;
    } catch (err) {
      const e = ConnectError.from(err);
      const cause = (e.cause as { code?: string } | undefined)?.code;
      if (cause !== undefined && /^E[A-Z]+$/.test(cause)) {
        const addr = isIP(target) === 6 ? `[${target}]:${this.opts.port}` : `${target}:${this.opts.port}`;
        throw new ConnectError(
          `connection error: desc = "transport: Error while dialing: dial tcp ${addr}: connect: ${cause === "ECONNREFUSED" ? "connection refused" : cause}"`,
          Code.Unavailable,
        );
      }
      throw new ConnectError(e.rawMessage, e.code);
    }
  }

  /** machined's handlers, on this node's etcd member. */
  private async local(
    method: AnyMethod,
    req: MessageShape<DescMessage>,
    ctx: HandlerContext,
    roles: string[],
    target: string | null,
  ): Promise<unknown> {
    const name = method.name;
    const entry = this.opts.journal.begin({
      server: this.address,
      target,
      method: name,
      via: "local",
      roles,
    });
    try {
      const reply = await this.serve(name, ctx, roles, entry, req);
      finish(entry, "OK");
      return create(method.output, reply as never);
    } catch (err) {
      const e = ConnectError.from(err);
      finish(entry, Code[e.code], e.rawMessage);
      throw e;
    }
  }

  private async serve(
    name: string,
    ctx: HandlerContext,
    roles: string[],
    entry: JournalEntry,
    req: MessageShape<DescMessage>,
  ): Promise<object> {
    const delay = this.latencyMs.get(name) ?? this.latencyMs.get("*") ?? 0;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const allowed = RBAC[name] ?? ["os:admin"];
    if (!roles.some((r) => allowed.includes(r)))
      throw new ConnectError("not authorized", Code.PermissionDenied);
    const failure = this.failures.get(name);
    if (failure) {
      this.failures.delete(name);
      throw new ConnectError(failure.message, failure.code);
    }
    if (name === "Version") {
      return {
        messages: [
          {
            version: {
              tag: "v1.11.0",
              sha: "harness",
              built: "",
              goVersion: "go1.24",
              os: "linux",
              arch: "amd64",
            },
            platform: { name: "harness", mode: "container" },
            features: { rbac: true },
          },
        ],
      };
    }
    if (name === "ServiceList") {
      const running = this.opts.etcd !== undefined && (this.opts.etcdRunning?.() ?? true);
      const services = [{ id: "apid", state: "Running", health: { healthy: true } }];
      if (this.opts.etcd !== undefined) {
        services.push({ id: "etcd", state: running ? "Running" : "Finished", health: { healthy: running } });
      }
      return { messages: [{ services }] };
    }
    if (name === "Statfs") return this.statfs();
    if (name === "Get") {
      const get = req as MessageShape<typeof GetRequestSchema>;
      entry.resource = get.type;
      return this.getResource(get);
    }
    const etcd = this.opts.etcd;
    const api = API_NAME[name];
    if (api === undefined)
      throw new ConnectError(`${name} is not implemented by the test server`, Code.Unimplemented);
    if (etcd === undefined)
      throw new ConnectError(`${api} is only available on control plane nodes`, Code.Unimplemented);
    const signal = ctx.signal;
    switch (name) {
      case "EtcdStatus": {
        const s = await wrap("get etcd status", () => etcd.status(signal));
        return {
          messages: [
            {
              memberStatus: {
                memberId: s.memberId,
                protocolVersion: s.version,
                dbSize: s.dbSize,
                dbSizeInUse: s.dbSizeInUse,
                leader: s.leader,
                raftIndex: s.raftIndex,
                raftTerm: s.raftTerm,
                raftAppliedIndex: s.raftAppliedIndex,
                errors: s.errors,
                isLearner: s.isLearner,
                storageVersion: s.storageVersion || storageFallback(s.version),
              },
            },
          ],
        };
      }
      case "EtcdMemberList": {
        const members = await wrap("get etcd members", () => etcd.memberList(signal));
        return {
          messages: [
            {
              legacyMembers: members.map((m) => m.name),
              members: members.map((m) => ({
                id: m.id,
                hostname: m.name,
                peerUrls: m.peerUrls,
                clientUrls: m.clientUrls,
                isLearner: m.isLearner,
              })),
            },
          ],
        };
      }
      case "EtcdAlarmList": {
        const alarms = await wrap("list etcd alarms", () => etcd.alarmList(signal));
        return { messages: [{ memberAlarms: alarms.map(toAlarm) }] };
      }
      case "EtcdAlarmDisarm": {
        const alarms = await wrap("disarm etcd alarms", () => etcd.alarmDisarmAll(signal));
        return { messages: [{ memberAlarms: alarms.map(toAlarm) }] };
      }
      case "EtcdDefragment": {
        // etcd ignores cancellation, and so does this: the journal keeps the real end.
        const gone = (): void => {
          entry.clientGoneAt = now();
        };
        signal.addEventListener("abort", gone, { once: true });
        await wrap("defragment etcd", () => etcd.defragment());
        return { messages: [{}] };
      }
      case "EtcdForfeitLeadership": {
        const members = await wrap("get etcd members", () => etcd.memberList(signal));
        if (members.length <= 1)
          throw new ConnectError("cannot forfeit leadership, only one member", Code.Unknown);
        const s = await wrap("get etcd status", () => etcd.status(signal));
        if (s.leader !== s.memberId) return { messages: [{ member: "" }] };
        const next = members.find((m) => m.id !== s.memberId);
        if (next === undefined) return { messages: [{ member: "" }] };
        try {
          await etcd.moveLeader(next.id, signal);
        } catch (err) {
          if (/not leader/.test((err as Error).message)) return { messages: [{ member: "" }] };
          throw new ConnectError(`failed to move leadership: ${(err as Error).message}`, Code.Unknown);
        }
        return { messages: [{ member: next.name }] };
      }
      default:
        throw new ConnectError(`${name} is not implemented by the test server`, Code.Unimplemented);
    }
  }

  /** The node enters `stage` as Talos reports it: ready, no unmet conditions, except while BOOTING or RUNNING. */
  setStage(stage: RuntimeMachineStage, unmet: { name: string; reason: string }[] = []): void {
    const checked =
      stage === RuntimeMachineStage.MACHINE_STAGE_BOOTING ||
      stage === RuntimeMachineStage.MACHINE_STAGE_RUNNING;
    this.machineStatus = { stage, ready: checked ? unmet.length === 0 : true, unmet: checked ? unmet : [] };
  }

  /**
   * machined's COSI State.Get, for the resources the tool reads: the node's etcd spec (namespace
   * etcd, type EtcdSpecs.etcd.talos.dev, id etcd), which exists only on a control-plane node, and
   * its machine status (namespace runtime, type MachineStatuses.runtime.talos.dev, id machine). Each
   * spec is Talos's protobuf encoding, with YAML beside.
   */
  private getResource(req: MessageShape<typeof GetRequestSchema>): object {
    if (req.type === "MachineStatuses.runtime.talos.dev" && this.servesMachineStatus)
      return this.getMachineStatus(req);
    if (req.type !== "EtcdSpecs.etcd.talos.dev")
      throw new ConnectError(
        `resource type ${JSON.stringify(req.type)} is not supported`,
        Code.PermissionDenied,
      );
    if (req.namespace !== "etcd")
      throw new ConnectError(
        `namespace ${JSON.stringify(req.namespace)} is not supported`,
        Code.PermissionDenied,
      );
    const etcd = this.opts.etcd;
    if (etcd === undefined || req.id !== "etcd")
      throw new ConnectError(
        `resource ${req.type}(${req.namespace}/${req.id}@undefined) doesn't exist`,
        Code.NotFound,
      );
    const extraArgs = Object.fromEntries(
      Object.entries(this.etcdExtraArgs).map(([k, values]) => [k, { values }]),
    );
    const spec = { name: this.address, image: "gcr.io/etcd-development/etcd:harness", extraArgs };
    const yaml = [
      `name: ${this.address}`,
      `image: ${spec.image}`,
      "extraArgs:",
      ...Object.entries(this.etcdExtraArgs).map(
        ([k, v]) => `    ${k}: ${JSON.stringify(v.length === 1 ? v[0] : v)}`,
      ),
    ].join("\n");
    return {
      resource: {
        metadata: {
          namespace: "etcd",
          type: "EtcdSpecs.etcd.talos.dev",
          id: "etcd",
          version: "1",
          owner: "etcd.SpecController",
          phase: "running",
        },
        spec: { protoSpec: toBinary(SpecSpecSchema, create(SpecSpecSchema, spec)), yamlSpec: yaml },
      },
    };
  }

  /** machined's Statfs: the filesystem holding `path` (here: the one holding the etcd log, on loopback). */
  private async statfs(): Promise<object> {
    if (!this.servesStatfs)
      throw new ConnectError("unknown service machine.StorageService", Code.Unimplemented);
    const fsStats = await statfs(
      this.opts.etcdLogFile === undefined ? tmpdir() : dirname(this.opts.etcdLogFile),
    );
    const bsize = BigInt(fsStats.bsize);
    const size = BigInt(fsStats.blocks) * bsize;
    const available =
      this.diskAvailableBytes === undefined
        ? BigInt(fsStats.bavail) * bsize
        : BigInt(this.diskAvailableBytes);
    return {
      size,
      used: size - BigInt(fsStats.bfree) * bsize,
      available,
      inodes: BigInt(fsStats.files),
      inodesFree: BigInt(fsStats.ffree),
      inodesUsed: BigInt(fsStats.files) - BigInt(fsStats.ffree),
    };
  }

  private getMachineStatus(req: MessageShape<typeof GetRequestSchema>): object {
    if (req.namespace !== "runtime")
      throw new ConnectError(
        `namespace ${JSON.stringify(req.namespace)} is not supported`,
        Code.PermissionDenied,
      );
    if (req.id !== "machine")
      throw new ConnectError(
        `resource ${req.type}(${req.namespace}/${req.id}@undefined) doesn't exist`,
        Code.NotFound,
      );
    const m = this.machineStatus;
    const spec = create(MachineStatusSpecSchema, {
      stage: m.stage,
      status: { ready: m.ready, unmetConditions: m.unmet },
    });
    const yaml = [
      `stage: ${RuntimeMachineStage[m.stage].replace("MACHINE_STAGE_", "").toLowerCase()}`,
      "status:",
      `    ready: ${String(m.ready)}`,
      `    unmetConditions: ${m.unmet.length === 0 ? "[]" : ""}`,
      ...m.unmet.map((u) => `        - name: ${u.name}\n          reason: ${JSON.stringify(u.reason)}`),
    ].join("\n");
    return {
      resource: {
        metadata: {
          namespace: "runtime",
          type: "MachineStatuses.runtime.talos.dev",
          id: "machine",
          version: "1",
          owner: "runtime.MachineStatusController",
          phase: "running",
        },
        spec: { protoSpec: toBinary(MachineStatusSpecSchema, spec), yamlSpec: yaml },
      },
    };
  }
}

/**
 * The last `lines` lines of a file (all of it when negative) up to byte `upTo` (default: its end), read backwards in blocks,
 * as Talos's log reader seeks: the cost follows what is asked for, not the file's size.
 */
export async function tailOf(path: string, lines: number, upTo?: number): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const size = upTo ?? (await file.stat()).size;
    if (lines < 0) return (await file.read(Buffer.alloc(size), 0, size, 0)).buffer;
    if (lines === 0) return Buffer.alloc(0);
    const BLOCK = 64 * 1024;
    // Back from the end, the tail starts just after the `lines`-th newline (the file's own final
    // newline ends its last line and does not count), or at the file's start.
    let chunks: Buffer[] = [];
    let count = 0;
    for (let end = size; end > 0;) {
      const from = Math.max(0, end - BLOCK);
      const buf = Buffer.alloc(end - from);
      await file.read(buf, 0, buf.length, from);
      // lastIndexOf's offset must stay >= 0: a negative one counts from the buffer's end.
      for (let at = buf.length; at > 0;) {
        const nl = buf.lastIndexOf(0x0a, at - 1);
        if (nl < 0) break;
        at = nl;
        if (from + nl === size - 1) continue;
        count += 1;
        if (count === lines) return Buffer.concat([buf.subarray(nl + 1), ...chunks]);
      }
      chunks = [buf, ...chunks];
      end = from;
    }
    return Buffer.concat(chunks);
  } finally {
    await file.close();
  }
}

function finish(entry: JournalEntry, code: string, message?: string): void {
  entry.end = now();
  entry.code = code;
  if (message !== undefined) entry.message = message;
}

/** machined wraps etcd errors ("failed to ...: %w"), which gRPC reports as Unknown. */
async function wrap<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const message = err instanceof ConnectError ? err.rawMessage : (err as Error).message;
    throw new ConnectError(`failed to ${what}: ${message}`, Code.Unknown);
  }
}

function toAlarm(a: EtcdAlarm): { memberId: bigint; alarm: EtcdMemberAlarm_AlarmType } {
  return { memberId: a.memberId, alarm: EtcdMemberAlarm_AlarmType[a.alarm] };
}

/** Talos reports "<major>.<minor>.0" as the storage version of etcd < 3.6. */
function storageFallback(version: string): string {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? `${m[1]}.${m[2]}.0` : "unknown";
}

function rolesOf(subject: string): string[] {
  return subject
    .split("\n")
    .filter((l) => l.startsWith("O="))
    .map((l) => l.slice(2))
    .filter((r) => r !== "");
}

function splitHeader(value: string): string[] {
  return value
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v !== "");
}

/**
 * apid's AppendInfo: the reply `{ messages: [X] }` becomes `{ messages: [X + metadata{hostname}] }`
 * by appending a serialized common.Empty (whose field 1 is the metadata) to X's bytes.
 */
function appendInfo(reply: Uint8Array, hostname: string): Uint8Array {
  const info = toBinary(EmptySchema, create(EmptySchema, { metadata: { hostname } }));
  const reader = new BinaryReader(reply);
  const writer = new BinaryWriter();
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      writer.tag(1, WireType.LengthDelimited).bytes(concat([reader.bytes(), info]));
    } else {
      reader.skip(wireType);
    }
  }
  return writer.finish();
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}
