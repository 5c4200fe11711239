// The composition every integration test, the demo and the benchmark use: real
// etcd members on loopback, a Talos API test server per node in front of them,
// per-run certificates, talosconfig files, and teardown that leaves no process.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stringify } from "yaml";

import { Pki, type ClientCertOptions } from "./certs.js";
import { EtcdCluster, pickLoopbackBlock } from "./etcd-cluster.js";
import { Journal, type JournalEntry } from "./journal.js";
import { TalosApiServer } from "./talos-api-server.js";

export interface HarnessOptions {
  /** Voting etcd members (control-plane nodes). Default 3. */
  members?: number;
  /** Learners added after the start, each on its own node. Default 0. */
  learners?: number;
  /** Nodes with a Talos API server but no etcd member. Default 0. */
  workers?: number;
  /** Node addresses in order (members, learners, workers); default: a free 127.A.B.0 block. */
  addresses?: string[];
  /** Talos API port on every node. Default 50000. */
  apiPort?: number;
  quotaBackendBytes?: number;
  etcdBin?: string;
}

export interface Credentials {
  /** base64 of the PEM, exactly as in a talosconfig. */
  ca: string;
  crt: string;
  key: string;
}

export interface Harness {
  nodes: string[];
  learners: string[];
  workers: string[];
  apiPort: number;
  etcd: EtcdCluster;
  servers: Map<string, TalosApiServer>;
  journal: JournalEntry[];
  pki: Pki;
  activeDefrags(): JournalEntry[];
  credentials(roles: string[], opts?: Omit<ClientCertOptions, "roles">): Promise<Credentials>;
  writeTalosconfig(opts: {
    roles: string[];
    dir: string;
    endpoints?: string[];
    nodes?: string[];
    context?: string;
    cert?: Omit<ClientCertOptions, "roles">;
  }): Promise<string>;
  close(): Promise<void>;
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const members = opts.members ?? 3;
  const learnerCount = opts.learners ?? 0;
  const workerCount = opts.workers ?? 0;
  const apiPort = opts.apiPort ?? 50000;
  const total = members + learnerCount + workerCount;
  const addresses = opts.addresses ?? (await pickLoopbackBlock(total, [2379, 2380, apiPort]));
  const nodes = addresses.slice(0, members);
  const learners = addresses.slice(members, members + learnerCount);
  const workers = addresses.slice(members + learnerCount, total);

  const pki = await Pki.create();
  const forwardCert = await pki.clientCert({ roles: ["os:impersonator"] });
  const journal = new Journal();
  const servers = new Map<string, TalosApiServer>();
  const dataRoot = mkdtempSync(join(tmpdir(), "talos-harness-"));
  const etcd = await EtcdCluster.start({
    size: members,
    addresses: nodes,
    dataRoot,
    ...(opts.quotaBackendBytes !== undefined ? { quotaBackendBytes: opts.quotaBackendBytes } : {}),
    ...(opts.etcdBin !== undefined ? { etcdBin: opts.etcdBin } : {}),
  });
  const close = async (): Promise<void> => {
    await Promise.all([...servers.values()].map((s) => s.close()));
    await etcd.close();
    rmSync(dataRoot, { recursive: true, force: true });
  };
  try {
    for (const address of learners) await etcd.addLearner(address);
    for (const address of [...nodes, ...learners, ...workers]) {
      const member = etcd.member(address);
      const server = new TalosApiServer({
        address,
        port: apiPort,
        caPem: pki.caPem,
        serverCert: await pki.serverCert({
          ips: [address],
          dns: [member?.name ?? `worker-${address}`, "talos.default"],
        }),
        forwardCert,
        etcd: member?.client,
        etcdRunning: () => member?.state === "running",
        ...(member ? { etcdLogFile: member.logFile } : {}),
        // The node's etcd spec carries the flags its etcd was started with, as Talos renders them.
        ...(member && opts.quotaBackendBytes !== undefined
          ? { etcdExtraArgs: { "quota-backend-bytes": [String(opts.quotaBackendBytes)] } }
          : {}),
        journal,
      });
      await server.up();
      servers.set(address, server);
    }
  } catch (err) {
    await close();
    throw err;
  }

  const credentials = async (
    roles: string[],
    cert: Omit<ClientCertOptions, "roles"> = {},
  ): Promise<Credentials> => {
    const c = await pki.clientCert({ roles, ...cert });
    return { ca: b64(pki.caPem), crt: b64(c.certPem), key: b64(c.keyPem) };
  };
  const endpointOf = (n: string): string => (apiPort === 50000 ? n : `${n}:${apiPort}`);

  return {
    nodes,
    learners,
    workers,
    apiPort,
    etcd,
    servers,
    journal: journal.entries,
    pki,
    activeDefrags: () => journal.activeDefrags(),
    credentials,
    async writeTalosconfig(o) {
      const creds = await credentials(o.roles, o.cert);
      const name = o.context ?? "harness";
      const context: Record<string, unknown> = { endpoints: o.endpoints ?? nodes.map(endpointOf), ...creds };
      if (o.nodes) context.nodes = o.nodes;
      const path = join(
        o.dir,
        `talosconfig-${o.roles.join("+") || "none"}-${Math.random().toString(36).slice(2, 8)}`,
      );
      writeFileSync(path, stringify({ context: name, contexts: { [name]: context } }), { mode: 0o600 });
      return path;
    },
    close,
  };
}
