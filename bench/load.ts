// The client load while a tool runs: bench/loadgen (Go) started and stopped from here.

import { spawn, spawnSync } from "node:child_process";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");

/** One client operation of the load generator (bench/loadgen). */
export interface Op {
  member: number;
  kind: "put" | "get" | "keepalive";
  /** ms since the epoch. */
  start: number;
  latencyMs: number;
  ok: boolean;
  /** A failed operation's error, as etcd's Go client gave it. */
  error?: string;
}

/** The Go load generator's binary: $LOADGEN_BIN, else built (once) by scripts/loadgen.sh. */
export function loadgenBinary(): string {
  const given = process.env.LOADGEN_BIN;
  if (given !== undefined && given !== "") return given;
  const built = spawnSync("bash", [join(ROOT, "scripts", "loadgen.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (built.status !== 0) throw new Error("could not build the load generator (scripts/loadgen.sh)");
  return built.stdout.trim();
}

/** Starts the load on every member; stop() ends it and returns every operation it recorded. */
export async function startLoad(
  bin: string,
  clientUrls: string[],
  interval: string,
): Promise<{ stop: () => Promise<Op[]> }> {
  const child = spawn(bin, ["-endpoints", clientUrls.join(","), "-interval", interval], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.on("close", resolveExit));
  await new Promise<void>((resolveStart, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("started\n")) resolveStart();
    });
    void exited.then((code) => {
      reject(new Error(`the load generator exited (${String(code)}): ${stderr.trim()}`));
    });
  });
  return {
    stop: async () => {
      child.stdin.end();
      const code = await exited;
      if (code !== 0) throw new Error(`the load generator failed (${String(code)}): ${stderr.trim()}`);
      return JSON.parse(stdout) as Op[];
    },
  };
}
