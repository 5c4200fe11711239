// Real etcd members serving clients over TLS with client certificates required, as kubeadm, k3s and
// RKE2 run them, for the etcd backend's tests: the cluster, the PEM files the tool is given (etcdctl's
// --cacert/--cert/--key), and when each member was really defragmenting, from etcd's own log.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { DefragWindow } from "../../bench/etcd-log.js";
import { defragWindows } from "../../bench/etcd-log.js";
import { EtcdPki } from "./certs.js";
import { EtcdCluster, pickLoopbackBlock } from "./etcd-cluster.js";

export interface DirectEtcd {
  etcd: EtcdCluster;
  pki: EtcdPki;
  /** The files handed to the tool. */
  files: { ca: string; cert: string; key: string };
  /** Every member's client URL, comma separated. */
  endpoints: string;
  /** `--backend etcd` with the endpoints and the TLS files: what a kubeadm operator would pass. */
  args: string[];
  /** A client certificate etcd does not trust (another CA), as files. */
  foreignCert(): Promise<{ cert: string; key: string }>;
  /** Every member's defragments since `since` (ms), from etcd's own log. */
  windows(since: number): DefragWindow[];
  close(): Promise<void>;
}

export async function startDirectEtcd(
  opts: {
    members?: number;
    quotaBackendBytes?: number;
    etcdBin?: string;
    httpApart?: boolean;
    /** The members' addresses; default: a free 127.A.B.0 block. */
    addresses?: string[];
  } = {},
): Promise<DirectEtcd> {
  const members = opts.members ?? 3;
  const pki = await EtcdPki.create();
  const client = await pki.clientCert({ cn: "root" });
  const dir = mkdtempSync(join(tmpdir(), "direct-etcd-"));
  const files = { ca: join(dir, "ca.crt"), cert: join(dir, "client.crt"), key: join(dir, "client.key") };
  writeFileSync(files.ca, pki.caPem);
  writeFileSync(files.cert, client.certPem);
  writeFileSync(files.key, client.keyPem, { mode: 0o600 });
  let etcd: EtcdCluster;
  try {
    etcd = await EtcdCluster.start({
      size: members,
      addresses: opts.addresses ?? (await pickLoopbackBlock(members, [2379, 2380, 2381, 2382])),
      dataRoot: join(dir, "data"),
      tls: { pki, client },
      ...(opts.quotaBackendBytes !== undefined ? { quotaBackendBytes: opts.quotaBackendBytes } : {}),
      ...(opts.etcdBin !== undefined ? { etcdBin: opts.etcdBin } : {}),
      ...(opts.httpApart === true ? { httpApart: true } : {}),
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoints = etcd.members.map((m) => m.clientUrl).join(",");
  return {
    etcd,
    pki,
    files,
    endpoints,
    args: [
      "--backend",
      "etcd",
      "--etcd-endpoints",
      endpoints,
      "--cacert",
      files.ca,
      "--cert",
      files.cert,
      "--key",
      files.key,
    ],
    async foreignCert() {
      const c = await pki.clientCert({ foreignCa: true });
      const paths = { cert: join(dir, "foreign.crt"), key: join(dir, "foreign.key") };
      writeFileSync(paths.cert, c.certPem);
      writeFileSync(paths.key, c.keyPem, { mode: 0o600 });
      return paths;
    },
    windows: (since) => etcd.members.flatMap((m, i) => defragWindows(m.logFile, i, since)),
    async close() {
      await etcd.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The etcd under test's version ("3.6.16"), from `etcd --version`. */
export function etcdVersion(bin = process.env.ETCD_BIN ?? "etcd"): string {
  const out = spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout;
  return /etcd Version: (\S+)/.exec(out)?.[1] ?? "unknown";
}
