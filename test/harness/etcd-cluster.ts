// Real etcd members on loopback, one address each, started and stopped by PID.

import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { CertAndKey, EtcdPki } from "./certs.js";
import { EtcdClient } from "./etcd-client.js";
import { MiB } from "./units.js";
import { waitFor } from "./wait.js";

export interface EtcdClusterOptions {
  size: number;
  addresses: string[];
  clientPort?: number;
  peerPort?: number;
  quotaBackendBytes?: number;
  etcdBin?: string;
  dataRoot?: string;
  namePrefix?: string;
  /**
   * Serve clients over TLS and require client certificates (--client-cert-auth), as kubeadm, k3s
   * and RKE2 run etcd: each member gets a server certificate of this PKI; the harness's own
   * clients use `client`.
   */
  tls?: { pki: EtcdPki; client: CertAndKey };
  /**
   * As k3s and RKE2 run etcd: the client port serves gRPC only (HTTP, /metrics included, on port
   * 2382: --listen-client-http-urls), and /metrics on http://ADDRESS:2381 (--listen-metrics-urls, as
   * their etcd-expose-metrics does).
   */
  httpApart?: boolean;
}

export interface EtcdMember {
  index: number;
  name: string;
  address: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  pid: number | undefined;
  state: "running" | "paused" | "stopped";
  learner: boolean;
  client: EtcdClient;
  process: ChildProcess | undefined;
}

/** Every etcd this process started; killed on exit even when a test fails. */
const LIVE = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of LIVE) {
    try {
      p.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

export class EtcdCluster {
  readonly members: EtcdMember[] = [];
  private readonly token = `harness-${randomUUID()}`;
  private readonly bin: string;
  private readonly clientPort: number;
  private readonly peerPort: number;
  private readonly dataRoot: string;
  private closed = false;
  /** Each member's server certificate files, by address (with `tls`). */
  private readonly tlsFiles = new Map<string, { ca: string; cert: string; key: string }>();

  private constructor(private readonly opts: EtcdClusterOptions) {
    this.bin = opts.etcdBin ?? process.env.ETCD_BIN ?? "etcd";
    this.clientPort = opts.clientPort ?? 2379;
    this.peerPort = opts.peerPort ?? 2380;
    this.dataRoot = opts.dataRoot ?? mkdtempSync(join(tmpdir(), "etcd-harness-"));
  }

  static async start(opts: EtcdClusterOptions): Promise<EtcdCluster> {
    if (opts.addresses.length < opts.size)
      throw new Error(`need ${opts.size} addresses, got ${opts.addresses.length}`);
    const cluster = new EtcdCluster(opts);
    try {
      for (let i = 0; i < opts.size; i += 1)
        cluster.members.push(cluster.describe(i, opts.addresses[i] ?? "", false));
      for (const m of cluster.members) await cluster.writeServerCert(m);
      const initial = cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
      for (const m of cluster.members) cluster.spawn(m, initial, "new");
      await cluster.waitHealthy(60_000);
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  private describe(index: number, address: string, learner: boolean): EtcdMember {
    const host = address.includes(":") ? `[${address}]` : address;
    const dataDir = join(this.dataRoot, `member-${index + 1}`);
    mkdirSync(dataDir, { recursive: true });
    const clientUrl = `${this.opts.tls ? "https" : "http"}://${host}:${this.clientPort}`;
    return {
      index,
      name: `${this.opts.namePrefix ?? "cp-"}${index + 1}`,
      address,
      clientUrl,
      peerUrl: `http://${host}:${this.peerPort}`,
      dataDir: join(dataDir, "data"),
      logFile: join(dataDir, "etcd.log"),
      pid: undefined,
      state: "stopped",
      learner,
      client: new EtcdClient(
        clientUrl,
        this.opts.tls && {
          caPem: this.opts.tls.pki.caPem,
          certPem: this.opts.tls.client.certPem,
          keyPem: this.opts.tls.client.keyPem,
        },
      ),
      process: undefined,
    };
  }

  private spawn(m: EtcdMember, initialCluster: string, state: "new" | "existing"): void {
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${m.clientUrl}`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${this.token}`,
      `--initial-cluster-state=${state}`,
      "--logger=zap",
      "--log-outputs=stderr",
    ];
    if (this.opts.quotaBackendBytes !== undefined)
      args.push(`--quota-backend-bytes=${this.opts.quotaBackendBytes}`);
    if (this.opts.httpApart === true) {
      const host = m.address.includes(":") ? `[${m.address}]` : m.address;
      args.push(
        `--listen-client-http-urls=${m.clientUrl.replace(/:\d+$/, ":2382")}`,
        `--listen-metrics-urls=http://${host}:2381`,
      );
    }
    const tls = this.tlsFiles.get(m.address);
    if (tls !== undefined)
      args.push(
        `--cert-file=${tls.cert}`,
        `--key-file=${tls.key}`,
        `--trusted-ca-file=${tls.ca}`,
        "--client-cert-auth",
      );
    const log = openSync(m.logFile, "a");
    const child = spawn(this.bin, args, { stdio: ["ignore", log, log] });
    closeSync(log);
    child.on("error", () => undefined);
    LIVE.add(child);
    child.on("exit", () => {
      LIVE.delete(child);
      if (m.process === child) {
        m.state = "stopped";
        m.pid = undefined;
      }
    });
    m.process = child;
    m.pid = child.pid;
    m.state = "running";
  }

  /** With `tls`: the member's server certificate, key and the CA, in its directory. */
  private async writeServerCert(m: EtcdMember): Promise<void> {
    const tls = this.opts.tls;
    if (tls === undefined) return;
    const dir = join(m.dataDir, "..", "tls");
    mkdirSync(dir, { recursive: true });
    const server = await tls.pki.serverCert([m.address]);
    const files = { ca: join(dir, "ca.crt"), cert: join(dir, "server.crt"), key: join(dir, "server.key") };
    writeFileSync(files.ca, tls.pki.caPem);
    writeFileSync(files.cert, server.certPem);
    writeFileSync(files.key, server.keyPem, { mode: 0o600 });
    this.tlsFiles.set(m.address, files);
  }

  /** The last lines of a member's log, for failure messages. */
  logTail(i: number, lines = 20): string {
    const m = this.members[i];
    if (m === undefined) return "";
    try {
      return readFileSync(m.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  member(address: string): EtcdMember | undefined {
    return this.members.find((m) => m.address === address);
  }

  private at(i: number): EtcdMember {
    const m = this.members[i];
    if (m === undefined) throw new Error(`no member ${i}`);
    return m;
  }

  private async signalAndWait(i: number, signal: NodeJS.Signals): Promise<void> {
    const m = this.at(i);
    const child = m.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      m.state = "stopped";
      return;
    }
    const exited = new Promise<void>((resolve) =>
      child.once("exit", () => {
        resolve();
      }),
    );
    if (m.state === "paused") child.kill("SIGCONT");
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
    m.state = "stopped";
    m.pid = undefined;
  }

  stop(i: number): Promise<void> {
    return this.signalAndWait(i, "SIGTERM");
  }

  kill(i: number): Promise<void> {
    return this.signalAndWait(i, "SIGKILL");
  }

  /** A hung member: the process is there but answers nothing. */
  pause(i: number): void {
    const m = this.at(i);
    m.process?.kill("SIGSTOP");
    m.state = "paused";
  }

  resume(i: number): void {
    const m = this.at(i);
    m.process?.kill("SIGCONT");
    m.state = "running";
  }

  async restart(i: number): Promise<void> {
    const m = this.at(i);
    if (m.state !== "stopped") await this.stop(i);
    const initial = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(",");
    this.spawn(m, initial, "existing");
    await waitFor(`${m.name} to answer after a restart`, () => m.client.status(AbortSignal.timeout(2000)), {
      timeoutMs: 30_000,
    });
  }

  /** Adds a learner on a new address: MemberAdd(isLearner) through a voting member, then starts it. */
  async addLearner(address: string): Promise<EtcdMember> {
    const m = this.describe(this.members.length, address, true);
    const via = this.members.find((x) => x.state === "running" && !x.learner);
    if (via === undefined) throw new Error("no running member to add a learner through");
    // etcd refuses membership changes ("unhealthy cluster") until every member has been active a while.
    await waitFor(
      "etcd to accept the new learner",
      async () => {
        await via.client.cluster.memberAdd({ peerURLs: [m.peerUrl], isLearner: true });
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    this.members.push(m);
    await this.writeServerCert(m);
    const initial = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(",");
    this.spawn(m, initial, "existing");
    await waitFor(`learner ${m.name} to answer`, async () => {
      const s = await m.client.status(AbortSignal.timeout(2000));
      return s.isLearner && s.leader !== 0n ? s : undefined;
    });
    return m;
  }

  /** Every running member answers, all agree on one leader, applied indexes within `maxLag`. */
  async waitHealthy(timeoutMs = 30_000, maxLag = 10n): Promise<void> {
    await waitFor(
      "the etcd cluster to be healthy",
      async () => {
        const running = this.members.filter((m) => m.state === "running");
        const statuses = await Promise.all(running.map((m) => m.client.status(AbortSignal.timeout(2000))));
        const leaders = new Set(statuses.map((s) => s.leader));
        const leader = statuses.find((s) => s.memberId === [...leaders][0]);
        if (leaders.size !== 1 || leaders.has(0n) || leader === undefined) return undefined;
        const behind = statuses.some((s) => leader.raftAppliedIndex - s.raftAppliedIndex > maxLag);
        return behind ? undefined : true;
      },
      { timeoutMs, intervalMs: 100 },
    ).catch((err: unknown) => {
      const logs = this.members.map((m, i) => `--- ${m.name} (${m.state})\n${this.logTail(i, 8)}`).join("\n");
      throw new Error(`${(err as Error).message}\n${logs}`);
    });
  }

  async leaderIndex(): Promise<number> {
    const running = this.members.filter((m) => m.state === "running");
    const statuses = await Promise.all(running.map(async (m) => ({ m, s: await m.client.status() })));
    const leaderId = statuses[0]?.s.leader;
    const leader = statuses.find((x) => x.s.memberId === leaderId);
    if (leader === undefined) throw new Error("no leader among the running members");
    return leader.m.index;
  }

  private leaderClient(): EtcdClient {
    const m = this.members.find((x) => x.state === "running" && !x.learner);
    if (m === undefined) throw new Error("no running member");
    return m.client;
  }

  /** Waits until every running member has applied at least what the leader had when called. */
  private async waitApplied(): Promise<void> {
    const running = this.members.filter((m) => m.state === "running");
    const target = (await this.leaderClient().status()).raftIndex;
    await waitFor("every member to apply the writes", async () => {
      const s = await Promise.all(running.map((m) => m.client.status()));
      return s.every((x) => x.raftAppliedIndex >= target) ? true : undefined;
    });
  }

  async sizes(): Promise<{ dbSize: number; dbSizeInUse: number }[]> {
    return Promise.all(
      this.members.map(async (m) => {
        const s = await m.client.status();
        return { dbSize: Number(s.dbSize), dbSizeInUse: Number(s.dbSizeInUse) };
      }),
    );
  }

  /**
   * Realistic fragmentation: writes interleaved live and doomed keys until the
   * file reaches about `targetDbBytes`, deletes the doomed ones, compacts to the
   * current revision. The file keeps its size; in-use drops to about `liveFraction`.
   */
  async fragment(opts: {
    targetDbBytes: number;
    liveFraction: number;
    valueBytes?: number;
  }): Promise<{ dbSize: number; dbSizeInUse: number }[]> {
    const valueBytes = opts.valueBytes ?? MiB;
    const client = this.leaderClient();
    const run = randomUUID().slice(0, 8);
    const count = Math.max(1, Math.ceil(opts.targetDbBytes / valueBytes));
    const everyLive = opts.liveFraction > 0 ? 1 / opts.liveFraction : Number.POSITIVE_INFINITY;
    let next = 0;
    let liveSoFar = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const i = next;
        next += 1;
        if (i >= count) return;
        // Spread live keys evenly among doomed ones, so freed pages are scattered through the file.
        const live = (i + 1) / everyLive >= liveSoFar + 1;
        if (live) liveSoFar += 1;
        const key = `/frag/${run}/${live ? "live" : "dead"}/${String(i).padStart(8, "0")}`;
        await client.put(key, randomBytes(valueBytes));
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const revision = await client.deletePrefix(`/frag/${run}/dead/`);
    await client.compact(revision);
    await this.waitApplied();
    // bbolt frees the compacted pages only at a later write transaction: nudge with small
    // writes until every member's in-use size has dropped and stays put.
    let previous = "";
    let nudge = 0;
    return waitFor(
      "compaction to settle on every member",
      async () => {
        await client.put(`/frag/${run}/settle`, new TextEncoder().encode(String(nudge)));
        nudge += 1;
        await this.waitApplied();
        const now = await this.sizes();
        const key = JSON.stringify(now.map((s) => s.dbSizeInUse));
        const dropped = now.every((s) => s.dbSizeInUse < s.dbSize * (opts.liveFraction + 0.25));
        if (dropped && key === previous) return now;
        previous = key;
        return undefined;
      },
      { intervalMs: 300 },
    );
  }

  /** Writes until etcd refuses with "database space exceeded"; use a small quotaBackendBytes. */
  async raiseNospace(): Promise<void> {
    const client = this.leaderClient();
    const run = randomUUID().slice(0, 8);
    for (let i = 0; i < 100_000; i += 1) {
      try {
        await client.put(`/fill/${run}/${i}`, randomBytes(MiB));
      } catch (err) {
        if (/database space exceeded/.test((err as Error).message)) break;
        throw err;
      }
    }
    await waitFor("the NOSPACE alarm", async () => {
      const alarms = await client.alarmList();
      return alarms.some((a) => a.alarm === "NOSPACE") ? true : undefined;
    });
  }

  /** Deletes every key and compacts (both allowed under NOSPACE): space is free but the file stays large. */
  async deleteAllAndCompact(): Promise<void> {
    const client = this.leaderClient();
    const revision = await client.deletePrefix("/");
    await client.compact(revision);
    await this.waitApplied();
  }

  /** A digest of every key and value plus the revision, for before/after comparisons. */
  async checksum(): Promise<{ revision: bigint; sha256: string; keys: number }> {
    const client = this.leaderClient();
    const hash = createHash("sha256");
    let key = new Uint8Array([0]);
    let revision = 0n;
    let keys = 0;
    for (;;) {
      const r = await client.kv.range({ key, rangeEnd: new Uint8Array([0]), limit: 32n, revision });
      if (revision === 0n) revision = r.header?.revision ?? 0n;
      for (const kv of r.kvs) {
        hash.update(kv.key).update("\0").update(kv.value).update(`\0${kv.modRevision}\n`);
        keys += 1;
      }
      const last = r.kvs.at(-1);
      if (!r.more || last === undefined) break;
      key = Uint8Array.from([...last.key, 0]);
    }
    return { revision, sha256: hash.digest("hex"), keys };
  }

  async hashKV(i: number, revision = 0n): Promise<{ hash: number; compactRevision: bigint }> {
    const r = await this.at(i).client.maintenance.hashKV({ revision });
    return { hash: r.hash, compactRevision: r.compactRevision };
  }

  /** Kills every member by PID, waits for the processes to exit, removes the data. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    for (const m of this.members) m.client.close();
    if (this.opts.dataRoot === undefined) rmSync(this.dataRoot, { recursive: true, force: true });
  }
}

/** True when every given TCP port can be bound on the address right now. */
export async function portsFree(address: string, ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const ok = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => {
        resolve(false);
      });
      server.listen({ host: address, port, exclusive: true }, () => {
        server.close(() => {
          resolve(true);
        });
      });
    });
    if (!ok) return false;
  }
  return true;
}

/** `count` addresses 127.A.B.11, .12, ... on a random block whose ports are free (tests run in parallel). */
export async function pickLoopbackBlock(
  count: number,
  ports: number[] = [2379, 2380, 50000],
): Promise<string[]> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const a = 100 + Math.floor(Math.random() * 150);
    const b = 1 + Math.floor(Math.random() * 250);
    const addresses = Array.from({ length: count }, (_, i) => `127.${a}.${b}.${11 + i}`);
    const free = await Promise.all(addresses.map((addr) => portsFree(addr, ports)));
    if (free.every(Boolean)) return addresses;
  }
  throw new Error("no free loopback block found");
}
