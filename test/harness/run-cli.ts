// Runs the built CLI as a child process with a clean environment.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO_ROOT = resolve(import.meta.dirname, "..", "..");
export const CLI = join(REPO_ROOT, "dist", "src", "main.js");

export interface CliResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  cwd?: string;
  /** Run something else than the built CLI (e.g. the bundle): [executable, ...args before ours]. */
  command?: string[];
}

/** HOME is an empty directory so that no ~/.talos/config leaks in. */
function cleanEnv(extra: Record<string, string> | undefined): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: mkdtempSync(join(tmpdir(), "cli-home-")),
    // The tests defragment one cluster many times within the hour; the --min-interval tests set it.
    TALOS_ETCD_DEFRAG_MIN_INTERVAL: "0s",
    // Each file's cluster elected its leader seconds ago; the election tests set it.
    TALOS_ETCD_DEFRAG_ELECTION_SETTLE: "0s",
    ...extra,
  };
}

export function startCli(
  args: string[],
  opts: CliOptions = {},
): { process: ChildProcess; done: Promise<CliResult>; stderr: () => string } {
  const [cmd, ...pre] = opts.command ?? [process.execPath, CLI];
  const child = spawn(cmd ?? process.execPath, [...pre, ...args], {
    env: cleanEnv(opts.env),
    cwd: opts.cwd ?? REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const done = new Promise<CliResult>((resolveDone) => {
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolveDone({ code, signal, stdout, stderr });
    });
  });
  return { process: child, done, stderr: () => stderr };
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return startCli(args, opts).done;
}
