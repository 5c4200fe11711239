// The developer scripts a new user runs first: scripts/etcd.sh (the cached etcd binary)
// and the demo's choice of loopback addresses.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { pickLoopbackBlock } from "../harness/etcd-cluster.js";
import { REPO_ROOT } from "../harness/run-cli.js";
import { waitFor } from "../harness/wait.js";

describe("scripts/etcd.sh", () => {
  let dir: string;

  before(() => {
    // A copy of the script next to a cached "etcd" that prints its version line and then far more
    // than a pipe holds: a reader that stops at the first line makes it die of SIGPIPE.
    dir = mkdtempSync(join(tmpdir(), "etcd-sh-"));
    mkdirSync(join(dir, "scripts"));
    copyFileSync(join(REPO_ROOT, "scripts", "etcd.sh"), join(dir, "scripts", "etcd.sh"));
    const cached = join(dir, ".cache", "etcd", "v3.9.99");
    mkdirSync(cached, { recursive: true });
    writeFileSync(
      join(cached, "etcd"),
      [
        "#!/bin/bash",
        'echo "etcd Version: 3.9.99"',
        'line=$(printf "%0100d" 0)',
        'for ((i = 0; i < 20000; i++)); do echo "$line"; done',
        "",
      ].join("\n"),
    );
    chmodSync(join(cached, "etcd"), 0o755);
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("reuses a cached binary whose --version output is long, every time (no SIGPIPE, no rebuild)", () => {
    for (let i = 0; i < 5; i += 1) {
      // No go on PATH: a rebuild would fail with "go is needed".
      const r = spawnSync("bash", [join(dir, "scripts", "etcd.sh"), "v3.9.99"], {
        encoding: "utf8",
        env: { PATH: "/usr/bin:/bin" },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${join(dir, ".cache", "etcd", "v3.9.99", "etcd")}\n`);
      assert.equal(r.stderr, "");
    }
  });

  it("a cached binary of another version is not taken for the one asked", () => {
    const r = spawnSync("bash", [join(dir, "scripts", "etcd.sh"), "v3.9.9"], {
      encoding: "utf8",
      env: { PATH: "/usr/bin:/bin" },
    });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, "go is needed to build etcd v3.9.9 (or set ETCD_BIN)\n");
  });
});

describe("the demo's addresses", () => {
  /** Runs scripts/demo.ts as `npm run demo` does (after set-up), with a deadline. */
  function demo(
    env: Record<string, string>,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "scripts", "demo.ts")], {
        cwd: REPO_ROOT,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir(), ...env },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const deadline = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`the demo did not stop within 60 s: ${stderr}`));
      }, 60_000);
      child.on("close", (code) => {
        clearTimeout(deadline);
        resolve({ code, stdout, stderr });
      });
    });
  }

  it("refuses addresses whose ports are taken, naming the address and port, and starts nothing", async () => {
    const [a, b, c] = await pickLoopbackBlock(3, [2379, 2380, 50000]);
    assert.ok(a && b && c);
    // Something else (a foreign etcd, say) listens on the second address's client port.
    const foreign: Server = createServer();
    await new Promise<void>((resolve) => foreign.listen({ host: b, port: 2379 }, resolve));
    try {
      const r = await demo({ DEMO_ADDRESSES: `${a},${b},${c}`, ETCD_BIN: "/nonexistent/etcd" });
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "");
      assert.equal(
        r.stderr,
        `[demo] ${b}:2379 is already in use (another etcd or Talos API?): free it (see \`ss -ltnp\`) ` +
          "or run the demo without DEMO_ADDRESSES to pick a free block\n",
      );
    } finally {
      await new Promise((resolve) => foreign.close(resolve));
    }
  });

  it("rejects DEMO_ADDRESSES that are not three loopback addresses", async () => {
    const r = await demo({ DEMO_ADDRESSES: "10.0.0.1,127.0.0.2", ETCD_BIN: "/nonexistent/etcd" });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      '[demo] DEMO_ADDRESSES must be three loopback IPv4 addresses (127.x.y.z), got "10.0.0.1,127.0.0.2"\n',
    );
  });
});

describe("the demo with --keep", () => {
  it("keeps the cluster up, says how to use it and how to stop it, and stops cleanly on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(REPO_ROOT, "scripts", "demo.ts"), "--keep"],
      {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: tmpdir(),
          ETCD_BIN: process.env.ETCD_BIN ?? "etcd",
        },
      },
    );
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      await waitFor(
        "the demo to say how to stop it",
        () => (stdout.includes("Stop it with Ctrl-C") ? true : undefined),
        {
          timeoutMs: 120_000,
        },
      );
      assert.match(stdout, new RegExp(`or: kill ${String(child.pid)}`));
      const talosconfig = /export TALOSCONFIG=(\S+)/.exec(stdout)?.[1];
      assert.ok(talosconfig !== undefined, stdout);
      // By hand, as the demo says: the cluster answers.
      const r = spawnSync(process.execPath, [join(REPO_ROOT, "dist", "src", "main.js"), "status"], {
        env: { PATH: process.env.PATH ?? "", TALOSCONFIG: talosconfig },
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /cp-1/);
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await exited, 0);
    assert.match(stdout, /stopping the demo cluster/);
  });
});
