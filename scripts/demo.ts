// `npm run demo`: the main job on an embedded default. Starts a real 3-member
// etcd cluster on 127.0.0.11-13 behind the Talos API test server (mutual TLS,
// Ed25519, like apid), fragments it, and runs the real CLI: status, run, status.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { startHarness } from "../test/harness/harness.js";

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

const home = mkdtempSync(join(tmpdir(), "etcd-defrag-demo-"));
banner("starting 3 etcd members on 127.0.0.11-13 behind a Talos API test server on port 50000");
const harness = await startHarness({ members: 3, addresses: ["127.0.0.11", "127.0.0.12", "127.0.0.13"] });
try {
  const talosconfig = await harness.writeTalosconfig({ roles: ["os:operator"], dir: home });
  banner("fragmenting: writing ~128 MiB, deleting 75% of it, compacting");
  const sizes = await harness.etcd.fragment({ targetDbBytes: 128 * MiB, liveFraction: 0.25 });
  process.stdout.write(
    sizes
      .map(
        (s, i) =>
          `member ${i + 1}: db ${(s.dbSize / MiB).toFixed(1)} MiB, in use ${(s.dbSizeInUse / MiB).toFixed(1)} MiB`,
      )
      .join("\n") + "\n",
  );
  const env = { HOME: home, TALOSCONFIG: talosconfig };
  banner("status before");
  await runCli(["status"], env);
  banner("run (os:operator: the leader is defragmented in place, last)");
  process.exitCode = await runCli(["run", "--pause", "1s"], env);
  banner("status after");
  await runCli(["status"], env);
} finally {
  await harness.close();
  rmSync(home, { recursive: true, force: true });
}
