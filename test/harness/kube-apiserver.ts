// A real kube-apiserver (v1.34.2, built by scripts/kube-apiserver.sh into .cache/) on a
// loopback address, in front of its own one-member etcd (a harness etcd, prefix /registry-test):
// serving certificate from the harness PKI, RBAC, static tokens for its users, an ECDSA
// service-account key (so that TokenRequest works), /readyz with a deadline, stopped by PID.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stringify } from "yaml";

import { Pki, nodeKeyPem } from "./certs.js";
import { EtcdCluster, pickLoopbackBlock } from "./etcd-cluster.js";
import { REPO_ROOT } from "./run-cli.js";
import { waitFor } from "./wait.js";

export interface KubeUser {
  name: string;
  groups?: string[];
}

/** Any Kubernetes object, as rendered YAML parses. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

export interface KubeApiServerOptions {
  /** Users with a static token each; "admin" (system:masters) is always there. */
  users?: KubeUser[];
  port?: number;
}

/** Every kube-apiserver this process started; killed on exit even when a test fails. */
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

/** The binary: KUBE_APISERVER_BIN, or the one scripts/kube-apiserver.sh builds (once) into .cache/. */
export function kubeApiServerBin(): string {
  const fromEnv = process.env.KUBE_APISERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const cached = join(REPO_ROOT, ".cache", "kube-apiserver", "v1.34.2", "kube-apiserver");
  if (existsSync(cached)) return cached;
  const r = spawnSync("bash", [join(REPO_ROOT, "scripts", "kube-apiserver.sh")], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`scripts/kube-apiserver.sh failed: ${r.stderr}`);
  return r.stdout.trim();
}

export class KubeApiServer {
  /** How long the start took (spawn to /readyz), for the record. */
  startMs = 0;
  private process: ChildProcess | undefined;
  private closed = false;

  private constructor(
    readonly address: string,
    readonly port: number,
    readonly caPem: string,
    private readonly tokens: Map<string, string>,
    private readonly dir: string,
    private readonly etcd: EtcdCluster,
  ) {}

  get url(): string {
    return `https://${this.address}:${this.port}`;
  }

  get logFile(): string {
    return join(this.dir, "kube-apiserver.log");
  }

  static async start(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const bin = kubeApiServerBin();
    const port = opts.port ?? 6443;
    const [address] = await pickLoopbackBlock(1, [2379, 2380, port]);
    if (address === undefined) throw new Error("no loopback address");
    const dir = mkdtempSync(join(tmpdir(), "kube-apiserver-"));
    const etcd = await EtcdCluster.start({
      size: 1,
      addresses: [address],
      dataRoot: join(dir, "etcd"),
      namePrefix: "kube-etcd-",
    }).catch((err: unknown) => {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    });

    // Serving certificate from a harness CA; the service-account key must be RSA or ECDSA.
    const pki = await Pki.create();
    const serving = await pki.serverCert({ ips: [address], dns: ["kubernetes", "localhost"] });
    writeFileSync(join(dir, "serving.crt"), serving.certPem);
    writeFileSync(join(dir, "serving.key"), nodeKeyPem(serving.keyPem), { mode: 0o600 });
    const sa = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    writeFileSync(join(dir, "sa.key"), sa.privateKey.export({ type: "pkcs8", format: "pem" }), {
      mode: 0o600,
    });
    writeFileSync(join(dir, "sa.pub"), sa.publicKey.export({ type: "spki", format: "pem" }));

    const tokens = new Map<string, string>();
    const lines: string[] = [];
    for (const u of [{ name: "admin", groups: ["system:masters"] }, ...(opts.users ?? [])]) {
      const token = randomBytes(16).toString("hex");
      tokens.set(u.name, token);
      lines.push(`${token},${u.name},${u.name},"${(u.groups ?? []).join(",")}"`);
    }
    writeFileSync(join(dir, "tokens.csv"), lines.join("\n") + "\n", { mode: 0o600 });

    const server = new KubeApiServer(address, port, pki.caPem, tokens, dir, etcd);
    const args = [
      `--etcd-servers=${etcd.members[0]?.clientUrl ?? ""}`,
      "--etcd-prefix=/registry-test",
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, "certs")}`,
      `--tls-cert-file=${join(dir, "serving.crt")}`,
      `--tls-private-key-file=${join(dir, "serving.key")}`,
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      "--authorization-mode=RBAC",
      "--anonymous-auth=false",
      `--service-account-key-file=${join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      "--service-cluster-ip-range=10.96.0.0/24",
      "--allow-privileged=false",
      "--profiling=false",
      "--v=1",
    ];
    const t0 = performance.now();
    const log = openSync(server.logFile, "a");
    const child = spawn(bin, args, { stdio: ["ignore", log, log] });
    closeSync(log);
    child.on("error", () => undefined);
    LIVE.add(child);
    child.on("exit", () => LIVE.delete(child));
    server.process = child;
    try {
      await waitFor(
        "kube-apiserver /readyz",
        async () => {
          if (child.exitCode !== null) throw new Error(`kube-apiserver exited with ${child.exitCode}`);
          const r = await server.get("/readyz");
          return r.status === 200 ? true : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 100 },
      );
    } catch (err) {
      const tail = readFileSync(server.logFile, "utf8").trimEnd().split("\n").slice(-15).join("\n");
      await server.close();
      throw new Error(`${(err as Error).message}\n${tail}`, { cause: err });
    }
    server.startMs = performance.now() - t0;
    return server;
  }

  token(user: string): string {
    const t = this.tokens.get(user);
    if (t === undefined) throw new Error(`no user ${user}`);
    return t;
  }

  /** A kubeconfig for one of the users (or a bearer token of one's own, e.g. a service account's). */
  writeKubeconfig(dir: string, who: { user: string } | { name: string; token: string }): string {
    const name = "user" in who ? who.user : who.name;
    const token = "user" in who ? this.token(who.user) : who.token;
    const path = join(
      dir,
      `kubeconfig-${name.replace(/[^a-z0-9-]/gi, "_")}-${randomBytes(3).toString("hex")}`,
    );
    const config = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "test",
          cluster: {
            server: this.url,
            "certificate-authority-data": Buffer.from(this.caPem).toString("base64"),
          },
        },
      ],
      users: [{ name, user: { token } }],
      contexts: [{ name: "test", context: { cluster: "test", user: name } }],
      "current-context": "test",
    };
    writeFileSync(path, stringify(config), { mode: 0o600 });
    return path;
  }

  /** A plain GET as the admin, for readiness and checks. */
  get(path: string, user = "admin"): Promise<{ status: number; body: string }> {
    return this.send("GET", path, user);
  }

  /**
   * Deletes one object as the admin, dependents in the background (no orphan finalizer, which only the
   * garbage collector of a kube-controller-manager, absent here, would remove): gone at once.
   */
  delete(o: KubeObject): Promise<{ status: number; body: string }> {
    return this.send("DELETE", `${this.objectPath(o)}?propagationPolicy=Background`, "admin");
  }

  /** The object's REST path: /api(s)/GROUP/VERSION[/namespaces/NS]/PLURAL/NAME. */
  objectPath(o: KubeObject): string {
    const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
    const lower = o.kind.toLowerCase();
    const plural = lower.endsWith("y") ? `${lower.slice(0, -1)}ies` : `${lower}s`;
    const base = group === "" ? `/api/${version ?? ""}` : `/apis/${group}/${version ?? ""}`;
    const ns = o.metadata.namespace === undefined ? "" : `/namespaces/${o.metadata.namespace}`;
    return `${base}${ns}/${plural}/${o.metadata.name}`;
  }

  /**
   * Server-side apply of one object as it is (strict field validation: an unknown field is an
   * error), as the admin; `dryRun` validates and admits without storing. The object goes out
   * byte for byte: the client's typed serializer would drop fields its models do not know.
   */
  async apply(o: KubeObject, opts: { dryRun?: boolean } = {}): Promise<{ status: number; body: string }> {
    const query = `fieldManager=harness&force=true&fieldValidation=Strict${opts.dryRun ? "&dryRun=All" : ""}`;
    return this.send(
      "PATCH",
      `${this.objectPath(o)}?${query}`,
      "admin",
      JSON.stringify(o),
      "application/apply-patch+yaml",
    );
  }

  private send(
    method: string,
    path: string,
    user: string,
    body?: string,
    contentType?: string,
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          method,
          host: this.address,
          port: this.port,
          path,
          ca: this.caPem,
          headers: {
            authorization: `Bearer ${this.token(user)}`,
            ...(contentType === undefined ? {} : { "content-type": contentType }),
          },
          timeout: 10_000,
        },
        (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => {
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Kills the apiserver by PID, then its etcd; removes the files. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const child = this.process;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => {
        child.once("exit", () => {
          resolve();
        });
      });
      child.kill("SIGKILL");
      await exited;
    }
    await this.etcd.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
