// A real OCI registry (Debian's docker-registry, CNCF distribution) on loopback, plain HTTP, for the
// chart's push and pull. Started on a free port, stopped by PID, its storage in a temporary directory.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { waitFor } from "./wait.js";

export const REGISTRY_BIN = process.env.REGISTRY_BIN ?? "/usr/bin/docker-registry";

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

export class OciRegistry {
  private constructor(
    /** host:port, as in oci://HOST:PORT/... */
    readonly host: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {}

  static async start(address = "127.0.0.1"): Promise<OciRegistry> {
    if (!existsSync(REGISTRY_BIN)) {
      throw new Error(`${REGISTRY_BIN} not found: install Debian's docker-registry (scripts/test.sh does)`);
    }
    const dir = mkdtempSync(join(tmpdir(), "oci-registry-"));
    const port = await freePort(address);
    const config = join(dir, "config.yml");
    writeFileSync(
      config,
      [
        "version: 0.1",
        "log:",
        "  level: error",
        "storage:",
        "  filesystem:",
        `    rootdirectory: ${join(dir, "data")}`,
        "http:",
        `  addr: ${address}:${port}`,
        "",
      ].join("\n"),
    );
    let stderr = "";
    const child = spawn(REGISTRY_BIN, ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const registry = new OciRegistry(`${address}:${port}`, child, dir);
    try {
      await waitFor("the OCI registry to answer /v2/", async () => {
        if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
        return (await fetch(`http://${registry.host}/v2/`)).ok ? true : undefined;
      });
    } catch (err) {
      await registry.stop();
      throw err;
    }
    return registry;
  }

  /** GET a registry API path (/v2/...), parsed as JSON. */
  async get(path: string, accept = "application/json"): Promise<unknown> {
    const r = await fetch(`http://${this.host}${path}`, { headers: { accept } });
    if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
    return r.json();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once("exit", resolve));
      this.child.kill("SIGKILL");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
