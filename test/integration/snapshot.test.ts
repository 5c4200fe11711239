// A snapshot first (--snapshot-dir), against real etcd through the Talos API test server: the file is
// exactly what etcd streamed (its own sha256 at the end), mode 0600, taken before the first defragment;
// the newest N are kept; a snapshot that fails refuses the run; a directory that cannot be used is exit 2.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Code } from "@connectrpc/connect";

import { startHarness, type Harness } from "../harness/harness.js";
import { REPO_ROOT, runCli } from "../harness/run-cli.js";
import { defrags, nextSeq, parseSummary as summary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";

describe("run --snapshot-dir", () => {
  let h: Harness;
  let dir: string;
  let snapshots: string;
  let env: Record<string, string>;

  before(async () => {
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "snapshot-test-"));
    snapshots = join(dir, "snapshots");
    mkdirSync(snapshots);
    env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    await h.etcd.fragment({ targetDbBytes: 32 * MiB, liveFraction: 0.5 });
  });

  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const files = (): string[] => readdirSync(snapshots).sort();
  /** A run that defragments every member, keeping the newest two snapshots. */
  const snapshotRun = () =>
    runCli(
      [
        "run",
        "--output",
        "json",
        "--rule",
        "true",
        "--pause",
        "0s",
        "--snapshot-dir",
        snapshots,
        "--snapshot-keep",
        "2",
      ],
      { env },
    );

  it("takes a snapshot from the leader before the first defragment: etcd's bytes, sha256 verified, mode 0600", async () => {
    const leader = h.nodes[await h.etcd.leaderIndex()];
    const since = nextSeq(h);
    const r = await snapshotRun();
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.ok(s.snapshot, "the summary names the snapshot");
    assert.equal(s.snapshot.node, leader);
    assert.deepEqual(files(), [s.snapshot.path.split("/").at(-1)]);
    const bytes = readFileSync(s.snapshot.path);
    assert.equal(bytes.length, s.snapshot.bytes);
    assert.ok(bytes.length > 8 * MiB, `a real database: ${bytes.length} bytes`);
    assert.deepEqual(createHash("sha256").update(bytes.subarray(0, -32)).digest(), bytes.subarray(-32));
    assert.equal(statSync(s.snapshot.path).mode & 0o777, 0o600);
    const snap = h.journal.find((j) => j.seq >= since && j.via === "local" && j.method === "EtcdSnapshot");
    const first = defrags(h.journal, since)[0];
    assert.ok(
      snap && first && snap.end <= first.start,
      "the snapshot ended before the first defragment began",
    );
    assert.equal(snap.server, leader);
  });

  it("keeps the newest --snapshot-keep", async () => {
    for (let i = 0; i < 2; i += 1) {
      const r = await snapshotRun();
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(files().length, 2);
  });

  it("a snapshot that fails refuses the run (exit 3): nothing defragmented, no file left", async () => {
    const before = files();
    const since = nextSeq(h);
    const leader = h.nodes[await h.etcd.leaderIndex()]!;
    h.servers
      .get(leader)!
      .failNext("EtcdSnapshot", Code.Unknown, "failed reading etcd snapshot: disk on fire");
    const r = await runCli(["run", "--output", "json", "--rule", "true", "--snapshot-dir", snapshots], {
      env,
    });
    assert.equal(r.code, 3, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "refused");
    assert.deepEqual(
      s.refusals.map((f) => f.gate),
      ["snapshot"],
    );
    assert.match(
      s.error ?? "",
      /the snapshot of \S+ failed: EtcdSnapshot failed: failed reading etcd snapshot: disk on fire; nothing is defragmented/,
    );
    assert.equal(defrags(h.journal, since).length, 0);
    assert.deepEqual(files(), before, "no partial file");
  });

  it("a directory that does not exist: exit 2 naming it, nothing called", async () => {
    const since = h.journal.length;
    const missing = join(dir, "missing");
    const r = await runCli(["run", "--snapshot-dir", missing], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--snapshot-dir ${missing} does not exist \\(ENOENT\\)`));
    assert.equal(h.journal.length, since);
  });

  it(
    "a directory the run's user cannot write (uid 65532, as in the image): exit 2 naming it, nothing called",
    { skip: userInfo().uid !== 0 && "needs root to switch user" },
    async () => {
      const since = h.journal.length;
      const locked = join(dir, "locked");
      mkdirSync(locked);
      chmodSync(locked, 0o755);
      chmodSync(dir, 0o755);
      const creds = await h.credentials(["os:operator"]);
      // The bundle, as the image has it, copied where uid 65532 can read it: the clone itself may be
      // in a folder it cannot enter (a clone under /root, which is 0700).
      const app = join(dir, "app");
      cpSync(join(REPO_ROOT, "dist", "bundle"), app, { recursive: true });
      chmodSync(app, 0o755);
      const cli = join(app, "talos-etcd-defrag.mjs");
      const r = await runCli(["run", "--snapshot-dir", locked], {
        command: ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups", process.execPath, cli],
        env: {
          TALOS_CA: creds.ca,
          TALOS_CRT: creds.crt,
          TALOS_KEY: creds.key,
          TALOS_ENDPOINTS: h.nodes.map((n) => `${n}:${h.apiPort}`).join(","),
        },
        cwd: dir,
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`--snapshot-dir ${locked} cannot be written \\(EACCES\\)`));
      assert.equal(h.journal.length, since);
    },
  );
});
