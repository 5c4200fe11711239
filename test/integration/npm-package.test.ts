// The npm package as a laptop gets it: `npm pack`, then `npm install -g` into a temporary prefix and
// `npx talos-etcd-defrag`, both offline (scripts/npm-package-cache.sh put the dependencies into the npm
// cache), then `status` against the harness.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { startHarness, type Harness } from "../harness/harness.js";
import { REPO_ROOT, runCli } from "../harness/run-cli.js";

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
};

function npm(args: string[], cwd: string) {
  const r = spawnSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, npm_config_update_notifier: "false" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the npm package (npm pack, npm install -g, npx)", () => {
  let h: Harness;
  let dir: string;
  let tarball: string;
  let env: Record<string, string>;
  const cache = spawnSync("npm", ["config", "get", "cache"], { encoding: "utf8" }).stdout.trim();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "npm-package-"));
    const packed = npm(["pack", "--pack-destination", dir, "--json"], REPO_ROOT);
    assert.equal(packed.code, 0, packed.stderr);
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    assert.ok(info);
    tarball = join(dir, info.filename);
    h = await startHarness({ members: 3 });
    const creds = await h.credentials(["os:reader"]);
    env = {
      TALOS_CA: creds.ca,
      TALOS_CRT: creds.crt,
      TALOS_KEY: creds.key,
      TALOS_ENDPOINTS: h.nodes.map((n) => `${n}:${h.apiPort}`).join(","),
      // npx finds the dependencies in the warm cache; the CLI itself gets an empty HOME (runCli).
      npm_config_cache: cache,
      npm_config_update_notifier: "false",
    };
  });

  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the tarball holds the built CLI and the package.json it reads its version from, no tests or sources", () => {
    const r = spawnSync("tar", ["-tzf", tarball], { encoding: "utf8" });
    const files = r.stdout.trim().split("\n");
    assert.ok(files.includes("package/dist/src/main.js"));
    assert.ok(files.includes("package/dist/package.json"), "dist/src/main.js imports ../package.json");
    assert.ok(files.includes("package/README.md"));
    assert.deepEqual(
      files.filter(
        (f) =>
          !/^package\/(dist\/src\/.*\.js(\.map)?|dist\/package\.json|package\.json|README\.md|CHANGELOG\.md)$/.test(
            f,
          ),
      ),
      [],
    );
  });

  it("npm install -g into a prefix: talos-etcd-defrag version and status", async () => {
    const prefix = join(dir, "prefix");
    const r = npm(["install", "-g", "--prefix", prefix, tarball, "--offline"], dir);
    assert.equal(r.code, 0, r.stderr);
    const bin = join(prefix, "bin", "talos-etcd-defrag");
    assert.ok(existsSync(bin));
    assert.ok((statSync(bin).mode & 0o111) !== 0, "executable");
    const version = await runCli(["version"], { command: [bin], env, cwd: dir });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), `${pkg.name} ${pkg.version}`);
    const status = await runCli(["status", "--output", "json"], { command: [bin], env, cwd: dir });
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { members: unknown[] }).members.length, 3);
  });

  it("npx talos-etcd-defrag status", async () => {
    const project = join(dir, "laptop");
    mkdirSync(project);
    const r = await runCli(["status"], {
      command: ["npx", "--offline", "--yes", "--package", tarball, "--", "talos-etcd-defrag"],
      env,
      cwd: project,
    });
    assert.equal(r.code, 0, r.stderr);
    for (const node of h.nodes) assert.match(r.stdout, new RegExp(node.replace(/\./g, "\\.")));
  });
});
