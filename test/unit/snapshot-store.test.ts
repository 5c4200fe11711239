// Snapshots as files: written 0600 (they hold every Kubernetes Secret), kept only when etcd's own
// sha256 at their end matches, the newest N kept; a directory that cannot be used is exit 2.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import { checkSnapshotDir, fileSnapshotStore } from "../../src/snapshot/file-store.js";

/** What etcd's Maintenance.Snapshot sends: the database, then its sha256. */
function etcdStream(db: Buffer): Buffer {
  return Buffer.concat([db, createHash("sha256").update(db).digest()]);
}

describe("snapshot file store", () => {
  const dirs: string[] = [];
  const dir = (): string => {
    const d = mkdtempSync(join(tmpdir(), "snapshots-"));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  let t = Date.parse("2026-11-27T14:00:00Z");
  const clock = (): Date => new Date((t += 1000));

  it("keeps a snapshot whose sha256 matches, written in odd chunks, with mode 0600", async () => {
    const d = dir();
    const stream = etcdStream(Buffer.from("bolt database pages ".repeat(1000)));
    const w = await fileSnapshotStore(d, { keep: 3, now: clock }).create("10.0.0.2");
    for (let i = 0; i < stream.length; i += 7777) await w.write(stream.subarray(i, i + 7777));
    const kept = await w.commit();
    assert.match(kept.path, /\/etcd-snapshot-\d{8}T\d{6}\d{3}Z-10\.0\.0\.2\.db$/);
    assert.equal(kept.bytes, stream.length);
    assert.deepEqual(readFileSync(kept.path), stream, "the file is exactly what etcd sent");
    assert.equal(statSync(kept.path).mode & 0o777, 0o600);
    assert.deepEqual(kept.removed, []);
  });

  it("a truncated or corrupt snapshot is rejected and nothing is left", async () => {
    const d = dir();
    const stream = etcdStream(Buffer.alloc(5000, 7));
    for (const bad of [
      stream.subarray(0, stream.length - 100),
      Buffer.concat([Buffer.from("x"), stream.subarray(1)]),
    ]) {
      const w = await fileSnapshotStore(d, { keep: 3, now: clock }).create("10.0.0.1");
      await w.write(bad);
      await assert.rejects(w.commit(), (err: unknown) => {
        assert.ok(err instanceof DefragError);
        assert.match(
          err.message,
          /^etcd's sha256 at the end of the snapshot does not match its contents: it is truncated or corrupt$/,
        );
        return true;
      });
    }
    const short = await fileSnapshotStore(d, { keep: 3, now: clock }).create("10.0.0.1");
    await short.write(Buffer.alloc(10));
    await assert.rejects(short.commit(), /the snapshot has 10 bytes: too short to be an etcd database/);
    assert.deepEqual(readdirSync(d), []);
  });

  it("abort removes what was written", async () => {
    const d = dir();
    const w = await fileSnapshotStore(d, { keep: 3, now: clock }).create("10.0.0.1");
    await w.write(Buffer.alloc(100));
    await w.abort();
    assert.deepEqual(readdirSync(d), []);
  });

  it("keeps the newest N of its own snapshots, and nothing else is touched", async () => {
    const d = dir();
    writeFileSync(join(d, "notes.txt"), "mine");
    const store = fileSnapshotStore(d, { keep: 2, now: clock });
    const paths: string[] = [];
    const removed: string[][] = [];
    for (let i = 0; i < 4; i += 1) {
      const w = await store.create(`10.0.0.${i + 1}`);
      await w.write(etcdStream(Buffer.alloc(100, i)));
      const kept = await w.commit();
      paths.push(kept.path);
      removed.push(kept.removed);
    }
    assert.deepEqual(
      readdirSync(d).sort(),
      ["notes.txt", ...paths.slice(2).map((p) => p.split("/").at(-1))].sort(),
    );
    assert.deepEqual(
      removed.map((r) => r.length),
      [0, 0, 1, 1],
    );
  });

  it("a directory that is missing or not a directory: a config error naming it", () => {
    const d = dir();
    const file = join(d, "file");
    writeFileSync(file, "");
    assert.throws(
      () => {
        checkSnapshotDir(join(d, "nope"));
      },
      (err: unknown) => {
        assert.ok(err instanceof DefragError);
        assert.equal(err.kind, "config");
        assert.equal(err.message, `--snapshot-dir ${join(d, "nope")} does not exist (ENOENT)`);
        return true;
      },
    );
    assert.throws(
      () => {
        checkSnapshotDir(file);
      },
      new RegExp(`--snapshot-dir ${file} is not a directory`),
    );
    checkSnapshotDir(d);
  });
});
