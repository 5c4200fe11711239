// `run` through the real CLI against the harness (real etcd, real mTLS, real
// protobuf): each scenario asserts the JSON summary, the exit code and the journal.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { runCli } from "../harness/run-cli.js";
import { startHarness, type Harness } from "../harness/harness.js";
import type { JournalEntry } from "../harness/journal.js";
import { TEST_RULE, defrags, nextSeq, parseSummary as summary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";

const MUTATING = new Set(["EtcdDefragment", "EtcdAlarmDisarm", "EtcdForfeitLeadership"]);

function assertNoOverlap(entries: JournalEntry[]): void {
  for (let i = 1; i < entries.length; i += 1) {
    const prev = entries[i - 1];
    const cur = entries[i];
    assert.ok(prev && cur);
    assert.ok(
      cur.start >= prev.end,
      `${cur.server} started at ${cur.start} before ${prev.server} ended at ${prev.end}`,
    );
  }
}

describe("run on a fragmented 3-member cluster", () => {
  let h: Harness;
  let dir: string;
  let operator: string;
  let env: Record<string, string>;

  before(async () => {
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "run-test-"));
    operator = await h.writeTalosconfig({ roles: ["os:operator"], dir });
    env = { TALOSCONFIG: operator };
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
  });

  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("--dry-run prints the plan and calls nothing that changes the cluster", async () => {
    const since = nextSeq(h);
    const r = await runCli(
      ["run", "--dry-run", "--output", "json", "--log-format", "json", "--rule", TEST_RULE],
      {
        env,
      },
    );
    const logs = r.stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { level: string; msg: string; runId: string });
    assert.ok(logs.length >= 4 && logs.every((l) => typeof l.msg === "string" && l.runId === logs[0]?.runId));
    assert.ok(logs.some((l) => l.msg.startsWith("plan: defragment ")));
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "dry-run");
    assert.deepEqual(
      s.members.map((m) => m.action),
      ["would-defragment", "would-defragment", "would-defragment"],
    );
    assert.equal(s.members.at(-1)?.isLeader, true, "the leader is planned last");
    assert.equal(h.journal.filter((j) => j.seq >= since && MUTATING.has(j.method)).length, 0);
  });

  it("defragments followers first and the leader last (in place, operator), never two at once, data unchanged", async () => {
    const before = await h.etcd.checksum();
    const leader = h.nodes[await h.etcd.leaderIndex()];
    const since = nextSeq(h);
    const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE, "--pause", "200ms"], { env });
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "success");
    assert.equal(s.members.length, 3);
    for (const m of s.members) {
      assert.equal(m.action, "defragmented", m.reason);
      assert.ok(m.before && m.after);
      assert.ok(
        m.after.dbSize < m.before.dbSize * 0.6,
        `${m.node} shrank: ${m.before.dbSize} -> ${m.after.dbSize}`,
      );
      assert.ok(m.after.dbSize <= m.after.dbSizeInUse * 1.5 + 2 * MiB, `${m.node} is about its in-use size`);
      assert.ok((m.durationMs ?? -1) >= 0);
    }
    assert.equal(
      s.reclaimedBytes,
      s.members.reduce((sum, m) => sum + (m.before?.dbSize ?? 0) - (m.after?.dbSize ?? 0), 0),
    );
    const calls = defrags(h.journal, since);
    assert.equal(calls.length, 3);
    assert.equal(calls.at(-1)?.server, leader, "the leader last");
    assert.ok(calls.every((c) => c.code === "OK"));
    assertNoOverlap(calls);
    assert.equal(h.journal.filter((j) => j.seq >= since && j.method === "EtcdForfeitLeadership").length, 0);
    assert.match(r.stderr, /leader.*in place.*os:admin/);
    const afterSum = await h.etcd.checksum();
    assert.deepEqual(afterSum, before, "every key, value and the revision are unchanged");
    const hashes = await Promise.all([0, 1, 2].map((i) => h.etcd.hashKV(i)));
    assert.equal(new Set(hashes.map((x) => x.hash)).size, 1, "HashKV agrees across members");
  });

  it("nothing to do on the defragmented cluster: no Defragment call", async () => {
    const since = nextSeq(h);
    const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE], { env });
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "nothing-to-do");
    assert.ok(s.members.every((m) => m.action === "skipped" && /rule false$/.test(m.reason)));
    assert.equal(defrags(h.journal, since).length, 0);
  });

  it("a reader certificate is refused before anything is defragmented, naming the role needed", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    const reader = await h.writeTalosconfig({ roles: ["os:reader"], dir });
    const since = nextSeq(h);
    const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE], {
      env: { TALOSCONFIG: reader },
    });
    assert.equal(r.code, 3, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "refused");
    assert.match(r.stderr, /it needs role os:operator/);
    assert.equal(defrags(h.journal, since).length, 0);
  });

  it("a long defrag logs a heartbeat with the elapsed time", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    // Slow enough to be seen: the harness delays each defragment call before etcd runs it.
    for (const server of h.servers.values()) server.latencyMs.set("EtcdDefragment", 1200);
    try {
      const r = await runCli(
        ["run", "--rule", TEST_RULE, "--heartbeat", "300ms", "--pause", "0s", "--nodes", h.nodes.join(",")],
        {
          env,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /INFO {2}\S+: still defragmenting after \d+ms/);
      assert.match(r.stdout, /^result: success \(3 defragmented\)/);
    } finally {
      for (const server of h.servers.values()) server.latencyMs.delete("EtcdDefragment");
    }
  });

  it("an admin certificate moves leadership away before defragmenting the leader", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    const admin = await h.writeTalosconfig({ roles: ["os:admin"], dir });
    const leader = h.nodes[await h.etcd.leaderIndex()];
    const since = nextSeq(h);
    const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE, "--pause", "0s"], {
      env: { TALOSCONFIG: admin },
    });
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "success");
    const forfeit = h.journal.find(
      (j) => j.seq >= since && j.via === "local" && j.method === "EtcdForfeitLeadership",
    );
    assert.ok(forfeit, "EtcdForfeitLeadership was called");
    assert.equal(forfeit.server, leader);
    const calls = defrags(h.journal, since);
    const leaderDefrag = calls.find((c) => c.server === leader);
    assert.ok(
      leaderDefrag && leaderDefrag.start > forfeit.end,
      "forfeit first, then the former leader's defrag",
    );
    assert.ok(s.members.find((m) => m.node === leader)?.leadershipMovedTo);
    assertNoOverlap(calls);
    assert.notEqual(h.nodes[await h.etcd.leaderIndex()], leader, "leadership stayed with another member");
  });
});
