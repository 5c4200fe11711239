// One version everywhere, checked by scripts/release.mjs: the release workflow runs it first with the tag,
// and nothing is built or pushed when it fails.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, it } from "node:test";

import { parse } from "yaml";

const ROOT = resolve(import.meta.dirname, "..", "..");
const FILES = [
  "scripts/release.mjs",
  "package.json",
  "package-lock.json",
  "charts/etcd-defrag/Chart.yaml",
  "charts/etcd-defrag/values.yaml",
  "Dockerfile",
  "deploy/flux/app/ocirepository.yaml",
  "deploy/flux/self-hosted/ocirepository.yaml",
  "CHANGELOG.md",
];

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of the files the release script reads, to break on purpose. */
function copy(): string {
  const dir = mkdtempSync(join(tmpdir(), "release-check-"));
  dirs.push(dir);
  for (const f of FILES) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  return dir;
}

function release(root: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(root, "scripts", "release.mjs"), ...args], {
    encoding: "utf8",
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function edit(root: string, file: string, from: RegExp, to: string): void {
  const path = join(root, file);
  const text = readFileSync(path, "utf8");
  assert.match(text, from);
  writeFileSync(path, text.replace(from, to));
}

const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

describe("one version (scripts/release.mjs check)", () => {
  it("the repository agrees with itself; with the tag v + package.json's version once CHANGELOG.md dates it", () => {
    const r = release(ROOT, ["check"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), version);
    // Nothing is released yet: the section is "unreleased", and a release tag is refused until it is dated.
    const heading = new RegExp(`^## \\[${version.replace(/\./g, "\\.")}\\].*$`, "m");
    const root = copy();
    edit(root, "CHANGELOG.md", heading, `## [${version}] - unreleased`);
    const undated = release(root, ["check", "--tag", `v${version}`]);
    assert.equal(undated.code, 1);
    assert.match(
      undated.stderr,
      new RegExp(
        `CHANGELOG\\.md's section for ${version.replace(/\./g, "\\.")} is not dated: write the release date into its heading`,
      ),
    );
    edit(root, "CHANGELOG.md", heading, `## [${version}] - 2026-12-31`);
    const dated = release(root, ["check", "--tag", `v${version}`]);
    assert.equal(dated.code, 0, dated.stderr);
    assert.equal(dated.stdout.trim(), version);
  });

  it("the CLI prints that version", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src", "main.ts"), "version"], {
      encoding: "utf8",
      cwd: ROOT,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^talos-etcd-defrag ${version.replace(/\./g, "\\.")}$`, "m"));
  });

  it("a tag that disagrees fails, naming the expected tag", () => {
    const r = release(ROOT, ["check", "--tag", "v9.9.9"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`tag "v9\\.9\\.9" does not match the version: expected v${version}`));
  });

  it("each place that disagrees is named", () => {
    const root = copy();
    edit(root, "charts/etcd-defrag/Chart.yaml", /^appVersion: .*$/m, 'appVersion: "0.0.9"');
    edit(root, "Dockerfile", /^ARG VERSION=.*$/m, "ARG VERSION=1.0.0");
    edit(root, "deploy/flux/app/ocirepository.yaml", /^(\s+)tag: .*$/m, "$1tag: 0.0.1");
    edit(root, "deploy/flux/self-hosted/ocirepository.yaml", /^(\s+)tag: .*$/m, "$1tag: 0.0.2");
    const r = release(root, ["check"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Chart\.yaml appVersion is "0\.0\.9", package\.json says/);
    assert.match(r.stderr, /Dockerfile ARG VERSION is "1\.0\.0"/);
    assert.match(r.stderr, /app\/ocirepository\.yaml ref\.tag is "0\.0\.1"/);
    assert.match(r.stderr, /self-hosted\/ocirepository\.yaml ref\.tag is "0\.0\.2"/);
  });

  it("a version without a CHANGELOG.md section fails; the notes are that section", () => {
    const notes = release(ROOT, ["notes"]);
    assert.equal(notes.code, 0, notes.stderr);
    assert.ok(notes.stdout.trim().length > 0);
    assert.doesNotMatch(notes.stdout, /^## /m);
    const root = copy();
    edit(
      root,
      "CHANGELOG.md",
      new RegExp(`^## \\[${version.replace(/\./g, "\\.")}\\].*$`, "m"),
      "## [0.0.0]",
    );
    const r = release(root, ["check"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /CHANGELOG\.md has no section/);
  });

  it("stamp points the chart, the package and the Flux source at the repository owner", () => {
    const root = copy();
    const r = release(root, ["stamp", "--owner", "Example-Org"]);
    assert.equal(r.code, 0, r.stderr);
    const values = parse(readFileSync(join(root, "charts/etcd-defrag/values.yaml"), "utf8")) as {
      image: { repository: string };
    };
    assert.equal(values.image.repository, "ghcr.io/example-org/talos-etcd-defrag");
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      repository: { url: string };
    };
    assert.equal(pkg.repository.url, "git+https://github.com/example-org/talos-etcd-defrag.git");
    assert.match(
      readFileSync(join(root, "deploy/flux/app/ocirepository.yaml"), "utf8"),
      /url: oci:\/\/ghcr\.io\/example-org\/charts\/etcd-defrag/,
    );
    for (const f of ["charts/etcd-defrag/values.yaml", "charts/etcd-defrag/Chart.yaml", "package.json"]) {
      assert.doesNotMatch(
        readFileSync(join(root, f), "utf8"),
        /(ghcr\.io|github\.com)\/talos-etcd-defrag\//,
        f,
      );
    }
  });
});

describe("stamp --registry (your own registry, before the first release)", () => {
  it("points the chart's image and the self-hosted Flux source at it, and leaves the published paths alone", () => {
    const root = copy();
    const r = release(root, ["stamp", "--registry", "registry.example.org:5000/platform"]);
    assert.equal(r.code, 0, r.stderr);
    const values = parse(readFileSync(join(root, "charts/etcd-defrag/values.yaml"), "utf8")) as {
      image: { repository: string };
    };
    assert.equal(values.image.repository, "registry.example.org:5000/platform/talos-etcd-defrag");
    assert.match(
      readFileSync(join(root, "charts/etcd-defrag/Chart.yaml"), "utf8"),
      /image: registry\.example\.org:5000\/platform\/talos-etcd-defrag:/,
    );
    assert.match(
      readFileSync(join(root, "deploy/flux/self-hosted/ocirepository.yaml"), "utf8"),
      /url: oci:\/\/registry\.example\.org:5000\/platform\/charts\/etcd-defrag\n/,
    );
    assert.equal(
      readFileSync(join(root, "deploy/flux/app/ocirepository.yaml"), "utf8"),
      readFileSync(join(ROOT, "deploy/flux/app/ocirepository.yaml"), "utf8"),
    );
  });

  it("a registry with a scheme, in upper case, or both options: exit 2 saying what is expected, nothing written", () => {
    for (const args of [
      ["--registry", "https://registry.example.org"],
      ["--registry", "Registry.Example.org"],
      ["--registry", "registry.example.org", "--owner", "me"],
      [],
    ]) {
      const root = copy();
      const r = release(root, ["stamp", ...args]);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, /HOST\[:PORT\]\[\/PATH\]/, args.join(" "));
      for (const f of FILES) {
        assert.equal(readFileSync(join(root, f), "utf8"), readFileSync(join(ROOT, f), "utf8"), f);
      }
    }
  });
});

describe("the release workflow", () => {
  interface Job {
    needs?: string | string[];
    uses?: string;
    steps?: { run?: string; uses?: string }[];
  }
  const workflow = parse(readFileSync(join(ROOT, ".github/workflows/release.yml"), "utf8")) as {
    on: { push: { tags: string[] } };
    jobs: Record<string, Job>;
  };
  const needs = (name: string): string[] => {
    const n = workflow.jobs[name]?.needs ?? [];
    return typeof n === "string" ? [n] : n;
  };
  const dependsOn = (name: string, on: string): boolean =>
    needs(name).some((n) => n === on || dependsOn(n, on));

  it("runs on version tags and checks the versions against the tag first", () => {
    assert.deepEqual(workflow.on.push.tags, ["v*"]);
    const check = workflow.jobs.check;
    assert.ok(check, "a check job");
    assert.deepEqual(needs("check"), []);
    assert.ok(check.steps?.some((s) => /node scripts\/release\.mjs check --tag "\$TAG"/.test(s.run ?? "")));
  });

  it("every other job waits for the check, and everything that pushes waits for the tests", () => {
    for (const name of Object.keys(workflow.jobs)) {
      if (name === "check") continue;
      assert.ok(dependsOn(name, "check"), `${name} needs check`);
      if (name !== "test") assert.ok(dependsOn(name, "test"), `${name} needs test`);
    }
    assert.equal(workflow.jobs.test?.uses, "./.github/workflows/ci.yml");
  });

  it("names no registry owner: it comes from github.repository_owner", () => {
    const text = readFileSync(join(ROOT, ".github/workflows/release.yml"), "utf8");
    assert.doesNotMatch(text, /ghcr\.io\/talos-etcd-defrag/);
    assert.match(text, /github\.repository_owner/);
  });

  it("CI runs the README's test command", () => {
    const ci = readFileSync(join(ROOT, ".github/workflows/ci.yml"), "utf8");
    assert.match(ci, /^\s+- run: npm test$/m);
    assert.match(readFileSync(join(ROOT, "README.md"), "utf8"), /^npm test /m);
  });
});
