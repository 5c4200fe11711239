#!/usr/bin/env node
// The release's own checks and chores, run by .github/workflows/release.yml before anything is pushed.
// No dependencies (node alone), so the first job of a release needs only a checkout.
//
//   node scripts/release.mjs check [--tag vX.Y.Z]  every version in the repository agrees (and with the tag)
//   node scripts/release.mjs notes                 the CHANGELOG.md section of that version (release notes)
//   node scripts/release.mjs stamp --owner OWNER   points the chart and the package at ghcr.io/OWNER, github.com/OWNER
//   node scripts/release.mjs stamp --registry REG  points the chart (its image) and the self-hosted Flux source at
//                                                  an OCI registry of your own (README, "From this repository")
//
// One version: package.json's. The CLI prints it (src/main.ts imports package.json); the chart's version and
// appVersion, the Dockerfile's VERSION default, the lock file, the Flux example's chart tag and a CHANGELOG.md
// section must all say the same, and a release tag must be "v" + it.
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const read = (path) => readFileSync(resolve(root, path), "utf8");
/** The project's default owner, replaced by `stamp` with the repository owner of the release. */
export const DEFAULT_OWNER = "talos-etcd-defrag";
/** Files naming the owner: the chart's image and sources, the package's repository, the Flux example's source. */
export const OWNER_FILES = [
  "charts/etcd-defrag/values.yaml",
  "charts/etcd-defrag/Chart.yaml",
  "package.json",
  "deploy/flux/app/ocirepository.yaml",
];

/** Files naming where the image and chart live, for a registry of one's own (`stamp --registry`). */
export const REGISTRY_FILES = [
  "charts/etcd-defrag/values.yaml",
  "charts/etcd-defrag/Chart.yaml",
  "deploy/flux/self-hosted/ocirepository.yaml",
];
/** The placeholder for that registry in deploy/flux/self-hosted. */
export const REGISTRY_PLACEHOLDER = "registry.example.internal/platform";

function field(text, pattern, what) {
  const m = pattern.exec(text);
  return m?.[1] ?? `(no ${what})`;
}

/** Every place a version is written, by name. */
export function versions() {
  const pkg = JSON.parse(read("package.json"));
  const lock = JSON.parse(read("package-lock.json"));
  const chart = read("charts/etcd-defrag/Chart.yaml");
  return {
    "package.json version": pkg.version,
    "package-lock.json version": lock.version,
    'package-lock.json packages[""].version': lock.packages?.[""]?.version,
    "charts/etcd-defrag/Chart.yaml version": field(chart, /^version:\s*"?([^"\s]+)"?\s*$/m, "version"),
    "charts/etcd-defrag/Chart.yaml appVersion": field(
      chart,
      /^appVersion:\s*"?([^"\s]+)"?\s*$/m,
      "appVersion",
    ),
    "Dockerfile ARG VERSION": field(read("Dockerfile"), /^ARG VERSION=(\S+)\s*$/m, "ARG VERSION=default"),
    "deploy/flux/app/ocirepository.yaml ref.tag": field(
      read("deploy/flux/app/ocirepository.yaml"),
      /^\s+tag:\s*"?([^"\s]+)"?\s*$/m,
      "ref.tag",
    ),
    "deploy/flux/self-hosted/ocirepository.yaml ref.tag": field(
      read("deploy/flux/self-hosted/ocirepository.yaml"),
      /^\s+tag:\s*"?([^"\s]+)"?\s*$/m,
      "ref.tag",
    ),
  };
}

/** The CHANGELOG.md section "## [VERSION] ..." up to the next "## ", without its heading. */
export function notes(version) {
  const lines = read("CHANGELOG.md").split("\n");
  const start = lines.findIndex((l) => l.startsWith(`## [${version}]`));
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && l.startsWith("## "));
  return lines
    .slice(start + 1, end < 0 ? undefined : end)
    .join("\n")
    .trim();
}

/** Whether the section's heading carries a release date ("## [1.2.3] - 2026-12-31"), not "unreleased". */
export function dated(version) {
  const heading = read("CHANGELOG.md")
    .split("\n")
    .find((l) => l.startsWith(`## [${version}]`));
  return heading !== undefined && /^## \[[^\]]+\] - \d{4}-\d{2}-\d{2}\s*$/.test(heading);
}

/** Problems, each a sentence naming the file; empty when the release may go ahead. */
export function check(tag) {
  const all = versions();
  const version = all["package.json version"];
  const problems = [];
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
    problems.push(`package.json version ${JSON.stringify(version)} is not a semantic version`);
  }
  for (const [where, v] of Object.entries(all)) {
    if (v !== version) problems.push(`${where} is ${JSON.stringify(v)}, package.json says ${version}`);
  }
  if (tag !== undefined && tag !== `v${version}`) {
    problems.push(`tag ${JSON.stringify(tag)} does not match the version: expected v${version}`);
  }
  if (!notes(version)) problems.push(`CHANGELOG.md has no section "## [${version}]" with release notes`);
  else if (tag !== undefined && !dated(version)) {
    problems.push(
      `CHANGELOG.md's section for ${version} is not dated: write the release date into its heading ("## [${version}] - YYYY-MM-DD") in the release's commit`,
    );
  }
  return problems;
}

export function stamp(owner) {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(owner))
    throw new Error(`owner ${JSON.stringify(owner)}: lower case expected`);
  for (const path of OWNER_FILES) {
    const text = read(path);
    writeFileSync(
      resolve(root, path),
      text
        .replaceAll(`ghcr.io/${DEFAULT_OWNER}/`, `ghcr.io/${owner}/`)
        .replaceAll(`github.com/${DEFAULT_OWNER}/`, `github.com/${owner}/`),
    );
  }
}

/** Your registry instead of ghcr.io/talos-etcd-defrag: the chart's image, and the self-hosted Flux source. */
export function stampRegistry(registry) {
  if (!/^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(\/[a-z0-9][a-z0-9._-]*)*$/.test(registry)) {
    throw new Error(
      `registry ${JSON.stringify(registry)}: expected HOST[:PORT][/PATH] in lower case, without a scheme (e.g. registry.example.internal/platform)`,
    );
  }
  for (const path of REGISTRY_FILES) {
    const text = read(path);
    writeFileSync(
      resolve(root, path),
      text
        .replaceAll(`ghcr.io/${DEFAULT_OWNER}/`, `${registry}/`)
        .replaceAll(`${REGISTRY_PLACEHOLDER}/`, `${registry}/`),
    );
  }
}

function option(args, name) {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const [command, ...args] = process.argv.slice(2);
  if (command === "check") {
    const problems = check(option(args, "--tag"));
    for (const p of problems) console.error(`release check: ${p}`);
    if (problems.length > 0) process.exit(1);
    console.log(versions()["package.json version"]);
  } else if (command === "notes") {
    const version = versions()["package.json version"];
    const text = notes(version);
    if (!text) {
      console.error(`CHANGELOG.md has no section for ${version}`);
      process.exit(1);
    }
    console.log(text);
  } else if (command === "stamp") {
    const owner = option(args, "--owner");
    const registry = option(args, "--registry");
    if (!owner === !registry) {
      console.error("stamp needs --owner OWNER (the release) or --registry HOST[:PORT][/PATH] (your own)");
      process.exit(2);
    }
    try {
      if (owner) stamp(owner.toLowerCase());
      else stampRegistry(registry);
    } catch (err) {
      console.error(`stamp: ${err.message}`);
      process.exit(2);
    }
  } else {
    console.error(
      "usage: release.mjs check [--tag vX.Y.Z] | notes | stamp --owner OWNER | stamp --registry REGISTRY",
    );
    process.exit(2);
  }
}
