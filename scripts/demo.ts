// `npm run demo`: the main job on an embedded default. Starts a real 3-member
// etcd cluster on a free loopback block (127.A.B.11-13, ports 2379, 2380 and 50000
// free on each, checked first, as the test harness picks them) behind the Talos API
// test server (mutual TLS, Ed25519, like apid), fragments it, and runs the real CLI:
// status, run, status. With --backend etcd (`npm run demo -- --backend etcd`) the same job runs on
// etcd's own API instead, as on kubeadm, k3s or RKE2: the members serve clients over TLS and require
// client certificates, and the CLI gets etcdctl's --cacert/--cert/--key. DEMO_ADDRESSES=a,b,c uses
// those three addresses instead,
// after checking that their ports are free. With --keep (`npm run demo -- --keep`) the cluster
// stays up afterwards, to try `status` and `run` by hand, until Ctrl-C or SIGTERM.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";

import { pickLoopbackBlock, portsFree } from "../test/harness/etcd-cluster.js";
import { startDirectEtcd, type DirectEtcd } from "../test/harness/direct-etcd.js";
import { startHarness, type Harness } from "../test/harness/harness.js";

const root = resolve(import.meta.dirname, "..");
const cli = join(root, "dist", "src", "main.js");
const MiB = 1024 ** 2;

function banner(text: string): void {
  process.stdout.write(`\n=== ${text}\n\n`);
}

/** Runs the CLI with its output shown as is; async, since this process serves the Talos API. */
async function runCli(args: string[], env: Record<string, string>): Promise<number> {
  process.stdout.write(`$ talos-etcd-defrag ${args.join(" ")}\n`);
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: "inherit",
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  const code = await new Promise<number>((resolveExit) => {
    child.on("close", (status) => {
      resolveExit(status ?? 1);
    });
  });
  process.stdout.write(`(exit ${code})\n`);
  return code;
}

const PORTS = [2379, 2380, 50000];

/** A failure the demo explains in one line, without a stack trace. */
class DemoError extends Error {}

/** Three loopback addresses whose ports are all free right now, or a DemoError saying why there are none. */
async function addresses(): Promise<string[]> {
  const given = process.env.DEMO_ADDRESSES?.trim();
  if (given) {
    const list = given.split(",").map((a) => a.trim());
    if (list.length !== 3 || list.some((a) => !/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a)))
      throw new DemoError(`DEMO_ADDRESSES must be three loopback IPv4 addresses (127.x.y.z), got "${given}"`);
    for (const address of list) {
      for (const port of PORTS) {
        if (!(await portsFree(address, [port])))
          throw new DemoError(
            `${address}:${port} is already in use (another etcd or Talos API?): ` +
              "free it (see `ss -ltnp`) or run the demo without DEMO_ADDRESSES to pick a free block",
          );
      }
    }
    return list;
  }
  try {
    return await pickLoopbackBlock(3, PORTS);
  } catch {
    throw new DemoError(
      `no free loopback block: every 127.A.B.11-13 block tried had one of the ports ${PORTS.join(", ")} in use ` +
        "(is something listening on 0.0.0.0 there? see `ss -ltnp`)",
    );
  }
}

/** `--backend etcd`: the job on etcd's own API, the members requiring client certificates. */
async function demoEtcd(nodes: string[]): Promise<number> {
  let direct: DirectEtcd | undefined;
  const home = mkdtempSync(join(tmpdir(), "etcd-defrag-demo-"));
  try {
    banner(`starting 3 etcd members on ${nodes.join(", ")} (TLS on port 2379, client certificates required)`);
    direct = await startDirectEtcd({ members: 3, addresses: nodes });
    await fragment(direct.etcd);
    const env = { HOME: home };
    banner("status before");
    await runCli(["status", ...direct.args], env);
    banner("run (etcd backend: HashKV before and after, leadership moved to a defragmented member)");
    const code = await runCli([...["run", ...direct.args], "--pause", "1s", "--election-settle", "0s"], env);
    banner("status after");
    await runCli(["status", ...direct.args], env);
    if (process.argv.includes("--keep")) await keep([], direct.args);
    return code;
  } finally {
    await direct?.close();
    rmSync(home, { recursive: true, force: true });
  }
}

async function fragment(etcd: Harness["etcd"]): Promise<void> {
  banner("fragmenting: writing ~128 MiB, deleting 75% of it, compacting");
  const sizes = await etcd.fragment({ targetDbBytes: 128 * MiB, liveFraction: 0.25 });
  process.stdout.write(
    sizes
      .map(
        (s, i) =>
          `member ${i + 1}: db ${(s.dbSize / MiB).toFixed(1)} MiB, in use ${(s.dbSizeInUse / MiB).toFixed(1)} MiB`,
      )
      .join("\n") + "\n",
  );
}

async function demo(): Promise<number> {
  const nodes = await addresses();
  const at = process.argv.indexOf("--backend");
  const backend = at < 0 ? "talos" : process.argv[at + 1];
  if (backend === "etcd") return demoEtcd(nodes);
  if (backend !== "talos") throw new DemoError(`--backend must be talos or etcd, got "${backend ?? ""}"`);
  const home = mkdtempSync(join(tmpdir(), "etcd-defrag-demo-"));
  let harness: Harness | undefined;
  try {
    banner(
      `starting 3 etcd members on ${nodes.join(", ")} (etcd on ports 2379 and 2380) behind a Talos API test server on port 50000`,
    );
    harness = await startHarness({ members: 3, addresses: nodes });
    const talosconfig = await harness.writeTalosconfig({ roles: ["os:operator"], dir: home });
    await fragment(harness.etcd);
    const env = { HOME: home, TALOSCONFIG: talosconfig };
    banner("status before");
    await runCli(["status"], env);
    banner("run (os:operator: the leader is defragmented in place, last)");
    // The demo cluster elected its leader seconds ago: without this the run would first wait until it
    // has been stable for --election-settle (30s), as it should on a real cluster.
    const code = await runCli(["run", "--pause", "1s", "--election-settle", "0s"], env);
    banner("status after");
    await runCli(["status"], env);
    if (process.argv.includes("--keep")) await keep([`export TALOSCONFIG=${talosconfig}`], []);
    return code;
  } finally {
    await harness?.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/** Keeps the cluster up for trying the CLI by hand, saying how, until SIGINT or SIGTERM. */
async function keep(setup: string[], args: string[]): Promise<void> {
  const main = relative(process.cwd(), cli) || cli;
  const more = args.length === 0 ? "" : ` ${args.join(" ")}`;
  banner("the cluster stays up (--keep)");
  process.stdout.write(
    [
      ...setup,
      `node ${main} status${more}`,
      `node ${main} run --dry-run${more}`,
      `node ${main} run --rule true${more}`,
      "",
      `Stop it with Ctrl-C, or: kill ${process.pid}`,
      "",
    ].join("\n"),
  );
  await new Promise<void>((resolveStop) => {
    process.once("SIGINT", () => {
      resolveStop();
    });
    process.once("SIGTERM", () => {
      resolveStop();
    });
  });
  process.stdout.write("\nstopping the demo cluster\n");
}

try {
  process.exitCode = await demo();
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(
    err instanceof DemoError
      ? `[demo] ${message}\n`
      : `[demo] failed: ${message} (nothing is left running)\n`,
  );
  process.exitCode = 1;
}
