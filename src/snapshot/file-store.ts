// Snapshots as files in a directory (--snapshot-dir): written as `.part` with mode 0600 (a snapshot
// holds every Kubernetes Secret), checked against etcd's own sha256 at the end of the stream, renamed
// when good, and only the newest `keep` kept.

import { createHash } from "node:crypto";
import { constants, accessSync, statSync } from "node:fs";
import { open, readdir, rename, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";

import { configError, DefragError } from "../core/errors.js";
import type { SnapshotStore, SnapshotWriter } from "../core/ports.js";

/** etcd's Maintenance.Snapshot ends with the sha256 of everything before it. */
const DIGEST_BYTES = 32;
const NAME = /^etcd-snapshot-\d{8}T\d{6}(\d{3})?Z-.+\.db$/;

/** A directory that exists and can be written, or a config error naming it (exit 2, before any call). */
export function checkSnapshotDir(dir: string, source = "--snapshot-dir"): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw configError(
      `${source} ${dir} does not exist (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      "create it, or mount a volume there",
    );
  }
  if (!isDir) throw configError(`${source} ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw configError(
      `${source} ${dir} cannot be written (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      "the run's user must be able to create files there (in the chart: the volume's fsGroup)",
    );
  }
}

/** "20261127T141503123Z" for a file name that sorts by time. */
function stamp(now: Date): string {
  return now.toISOString().replace(/[-:.]/g, "");
}

export function fileSnapshotStore(dir: string, opts: { keep: number; now?: () => Date }): SnapshotStore {
  const now = opts.now ?? (() => new Date());
  return {
    where: dir,
    async create(node: string): Promise<SnapshotWriter> {
      const name = `etcd-snapshot-${stamp(now())}-${node.replace(/[^A-Za-z0-9.-]/g, "_")}.db`;
      const final = join(dir, name);
      const part = `${final}.part`;
      let file: FileHandle;
      try {
        file = await open(part, "wx", 0o600);
      } catch (err) {
        throw new DefragError("config", `cannot create ${part}: ${(err as Error).message}`, { cause: err });
      }
      // The hash covers everything but the last 32 bytes, which are not known to be last until the end.
      const hash = createHash("sha256");
      let tail = Buffer.alloc(0);
      let bytes = 0;
      let isOpen = true;
      const close = async (): Promise<void> => {
        if (isOpen) {
          isOpen = false;
          await file.close();
        }
      };
      return {
        async write(chunk: Uint8Array): Promise<void> {
          await file.write(chunk);
          bytes += chunk.length;
          const joined = Buffer.concat([tail, chunk]);
          const cut = Math.max(0, joined.length - DIGEST_BYTES);
          hash.update(joined.subarray(0, cut));
          tail = joined.subarray(cut);
        },
        async commit() {
          await file.sync();
          await close();
          const fail = async (why: string): Promise<never> => {
            await rm(part, { force: true });
            throw new DefragError("etcd", why);
          };
          if (bytes <= DIGEST_BYTES)
            return fail(`the snapshot has ${bytes} bytes: too short to be an etcd database`);
          if (!hash.digest().equals(tail)) {
            return fail(
              "etcd's sha256 at the end of the snapshot does not match its contents: it is truncated or corrupt",
            );
          }
          await rename(part, final);
          const removed = await prune(dir, opts.keep);
          return { path: final, bytes, removed };
        },
        async abort(): Promise<void> {
          await close();
          await rm(part, { force: true });
        },
      };
    },
  };
}

/** Removes the oldest snapshots beyond `keep` (ours only: by their name). */
async function prune(dir: string, keep: number): Promise<string[]> {
  const ours = (await readdir(dir)).filter((f) => NAME.test(f)).sort();
  const old = ours.slice(0, Math.max(0, ours.length - keep));
  for (const f of old) await rm(join(dir, f), { force: true });
  return old;
}
