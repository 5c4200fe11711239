#!/usr/bin/env node
// Replays the Dockerfile's build stage without Docker: its WORKDIR, COPY and RUN instructions, in order, in a
// temporary directory standing for the stage's WORKDIR, with the repository as the build context. Prints the
// path and sha256 of the bundle it produced (test/integration/build-stage.test.ts compares it with
// `npm run bundle`'s). npm reads the local cache first (npm_config_prefer_offline), as after `npm ci`.
//   node scripts/build-stage.mjs [--keep]
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");

/** The build stage's instructions: from its FROM ... AS build to the next FROM (continuations joined). */
export function buildStage(dockerfile) {
  const lines = dockerfile.replace(/\\\n/g, " ").split("\n");
  const start = lines.findIndex((l) => /^FROM\s.*\sAS\s+build\s*$/i.test(l));
  if (start < 0) throw new Error("the Dockerfile has no stage named build");
  const out = [];
  for (const line of lines.slice(start + 1)) {
    if (/^FROM\s/i.test(line)) break;
    const m = /^(\w+)\s+(.*)$/.exec(line.trim());
    if (!m || line.trim().startsWith("#")) continue;
    out.push({ op: m[1].toUpperCase(), args: m[2].trim() });
  }
  return out;
}

export function replay({ keep = false } = {}) {
  const steps = buildStage(readFileSync(join(root, "Dockerfile"), "utf8"));
  const stageRoot = mkdtempSync(join(tmpdir(), "build-stage-"));
  let workdir = stageRoot;
  const env = { ...process.env, npm_config_prefer_offline: "true", npm_config_update_notifier: "false" };
  try {
    for (const { op, args } of steps) {
      if (op === "WORKDIR") {
        workdir = join(stageRoot, args);
        mkdirSync(workdir, { recursive: true });
      } else if (op === "COPY") {
        if (args.startsWith("--")) throw new Error(`COPY ${args}: flags are not replayed`);
        const parts = args.split(/\s+/);
        const dest = parts.pop();
        const target = dest.startsWith("/") ? join(stageRoot, dest) : join(workdir, dest);
        // Docker's COPY: a directory's contents go into the destination; a file goes into it when it
        // ends with "/" (or there are several sources), else becomes it.
        for (const src of parts) {
          const from = join(root, src);
          const into =
            statSync(from).isDirectory() || !(dest.endsWith("/") || parts.length > 1)
              ? target
              : join(target, basename(src));
          cpSync(from, into, { recursive: true });
        }
      } else if (op === "RUN") {
        execFileSync("sh", ["-c", args], { cwd: workdir, env, stdio: ["ignore", "ignore", "inherit"] });
      } else if (op !== "ENV" && op !== "ARG") {
        throw new Error(`${op} in the build stage is not replayed`);
      }
    }
    const bundle = join(workdir, "dist", "bundle");
    return { stageRoot, bundle, sha256: treeSha256(bundle) };
  } finally {
    if (!keep) rmSync(stageRoot, { recursive: true, force: true });
  }
}

/** One digest of a directory: every file's relative path and bytes, in sorted order (the entry point and its chunks). */
export function treeSha256(dir) {
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(dir);
  const hash = createHash("sha256");
  for (const f of files) hash.update(`${relative(dir, f)}\0`).update(readFileSync(f));
  return hash.digest("hex");
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { bundle, sha256 } = replay({ keep: process.argv.includes("--keep") });
  console.log(`${sha256}  ${bundle}`);
}
