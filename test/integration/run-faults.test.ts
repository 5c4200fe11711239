// `run` when things go wrong: members down or killed mid-run, a defrag that
// outlives its call, alarms, learners, a single member, SIGTERM.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { runCli, startCli } from "../harness/run-cli.js";
import { startHarness, type Harness } from "../harness/harness.js";
import type { JournalEntry } from "../harness/journal.js";
import { TEST_RULE, defrags, nextSeq, parseSummary as summary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";
import { waitFor } from "../harness/wait.js";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "run-faults-"));
}

describe("run: safety gates refuse, nothing defragmented", () => {
  let h: Harness;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    h = await startHarness({ members: 3 });
    dir = tempDir();
    env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    await h.etcd.fragment({ targetDbBytes: 32 * MiB, liveFraction: 0.25 });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("one member's etcd stopped before the run: refused, exit 3, no Defragment", async () => {
    await h.etcd.stop(1);
    try {
      const since = nextSeq(h);
      const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE], { env });
      assert.equal(r.code, 3, r.stderr);
      const s = summary(r.stdout);
      assert.equal(s.result, "refused");
      assert.equal(s.refusals[0]?.gate, "reachable");
      assert.match(s.refusals[0].message, /voting member cp-2 .* does not answer/);
      assert.equal(defrags(h.journal, since).length, 0);
    } finally {
      await h.etcd.restart(1);
      await h.etcd.waitHealthy();
    }
  });

  it("a CORRUPT alarm: refused, exit 3, nothing disarmed", async () => {
    const client = h.etcd.members[0]!.client;
    const id = (await client.status()).memberId;
    await client.alarmActivate("CORRUPT", id);
    try {
      const since = nextSeq(h);
      const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE], { env });
      assert.equal(r.code, 3, r.stderr);
      assert.equal(summary(r.stdout).refusals[0]?.gate, "corrupt");
      assert.match(r.stderr, /CORRUPT alarm is raised/);
      assert.equal(defrags(h.journal, since).length, 0);
      assert.equal(h.journal.filter((j) => j.seq >= since && j.method === "EtcdAlarmDisarm").length, 0);
      assert.deepEqual(
        (await client.alarmList()).map((a) => a.alarm),
        ["CORRUPT"],
      );
    } finally {
      await client.alarmDisarmAll();
    }
  });
});

describe("run: a member killed after the previous one is done", () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    h = await startHarness({ members: 3 });
    dir = tempDir();
    await h.etcd.fragment({ targetDbBytes: 32 * MiB, liveFraction: 0.25 });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stops, exit 1, and no further Defragment", async () => {
    const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    const leaderIndex = await h.etcd.leaderIndex();
    const since = nextSeq(h);
    const child = startCli(
      ["run", "--output", "json", "--rule", TEST_RULE, "--pause", "2s", "--health-timeout", "5s"],
      {
        env,
      },
    );
    const first = await waitFor(
      "the first defrag to end",
      () => defrags(h.journal, since).find((d) => d.end > 0),
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    // Kill a member that has not been defragmented yet (not the leader, which goes last).
    const victim = h.nodes.findIndex((n, i) => i !== leaderIndex && n !== first.server);
    await h.etcd.kill(victim);
    const r = await child.done;
    assert.equal(r.code, 1, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "failed");
    assert.equal(defrags(h.journal, since).length, 1, "no Defragment after the failure");
    assert.deepEqual(
      s.members.map((m) => m.action),
      ["defragmented", "not-reached", "not-reached"],
    );
    assert.match(s.error ?? "", /does not answer/);
  });
});

describe("run: a defrag that outlives its call", () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    h = await startHarness({ members: 3 });
    dir = tempDir();
    // Enough live data that each member's defrag takes well over the 50 ms call timeout.
    await h.etcd.fragment({ targetDbBytes: 160 * MiB, liveFraction: 0.5 });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("does not start the next member until the previous one has finished", async () => {
    const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    const since = nextSeq(h);
    const r = await runCli(
      [
        "run",
        "--output",
        "json",
        "--rule",
        TEST_RULE,
        "--timeout",
        "50ms",
        "--pause",
        "0s",
        "--max-wait",
        "2m",
      ],
      { env, timeoutMs: 180_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "success");
    const calls = defrags(h.journal, since).filter(
      (c) => c.clientGoneAt !== undefined || c.code !== "OK" || true,
    );
    // The harness records when etcd really finished, even after the client gave up.
    const gaveUp = calls.filter((c) => c.clientGoneAt !== undefined);
    assert.ok(gaveUp.length >= 1, "at least one call ended before its defrag");
    const byNode = new Map<string, JournalEntry[]>();
    for (const c of calls) byNode.set(c.server, [...(byNode.get(c.server) ?? []), c]);
    const order = [...new Set(calls.map((c) => c.server))];
    for (let i = 1; i < order.length; i += 1) {
      const prevEnd = Math.max(...(byNode.get(order[i - 1]!) ?? []).map((c) => c.end));
      const nextStart = Math.min(...(byNode.get(order[i]!) ?? []).map((c) => c.start));
      assert.ok(
        nextStart >= prevEnd,
        `${order[i]} started ${nextStart - prevEnd} ms before ${order[i - 1]} finished`,
      );
    }
    assert.ok(s.members.some((m) => m.notes.some((n) => /the defragment call ended with/.test(n))));
    assert.match(r.stderr, /etcd keeps defragmenting regardless/);
  });
});

describe("run: NOSPACE recovery", () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    h = await startHarness({ members: 3, quotaBackendBytes: 48 * MiB });
    dir = tempDir();
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("defragments under NOSPACE, then disarms and confirms, exit 0", async () => {
    await h.etcd.raiseNospace();
    await h.etcd.deleteAllAndCompact();
    const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    const r = await runCli(["run", "--output", "json", "--quota-bytes", "48MiB", "--pause", "0s"], { env });
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "success");
    assert.ok(s.members.every((m) => m.action === "defragmented"));
    assert.ok(s.members.every((m) => /NOSPACE alarm raised, rule true/.test(m.reason)));
    assert.ok(s.alarmsDisarmed.length >= 1 && s.alarmsDisarmed.every((a) => a.startsWith("NOSPACE")));
    assert.deepEqual(await h.etcd.members[0]!.client.alarmList(), []);
  });

  it("NOSPACE with the data live (over --nospace-disarm-below of the quota): defragmented, still armed, so result alarm-raised and exit 1, not success", async () => {
    await h.etcd.raiseNospace();
    const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    const since = nextSeq(h);
    const r = await runCli(
      // No --quota-bytes: the 48 MiB quota is read from each node's etcd spec (with etcd's 2 GiB
      // default the members would be far below 70% of it, and NOSPACE would be disarmed).
      ["run", "--output", "json", "--nospace-disarm-below", "70%", "--pause", "0s", "--rule", "true"],
      {
        env,
      },
    );
    assert.equal(r.code, 1, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "alarm-raised");
    assert.equal(defrags(h.journal, since).length, 3, "every member was defragmented");
    assert.ok(s.members.every((m) => m.action === "defragmented"));
    assert.deepEqual(s.alarmsDisarmed, []);
    assert.ok(
      s.alarmsRaised.length >= 1 &&
        s.alarmsRaised.every((a) => a.alarm === "NOSPACE" && /^[0-9a-f]{16}$/.test(a.member)),
    );
    assert.match(
      s.error ?? "",
      /NOSPACE on [0-9a-f]{16}.* still raised at the end of the run: etcd refuses writes until NOSPACE is disarmed/,
    );
    assert.match(r.stderr, /NOSPACE stays armed: .* is at \d+\.\d MiB of a 48\.0 MiB quota/);
    assert.equal(h.journal.filter((j) => j.seq >= since && j.method === "EtcdAlarmDisarm").length, 0);
    assert.ok((await h.etcd.members[0]!.client.alarmList()).some((a) => a.alarm === "NOSPACE"));
  });
});

describe("run: learners and a single member", () => {
  it("a learner is reported and skipped", async () => {
    const h = await startHarness({ members: 3, learners: 1 });
    const dir = tempDir();
    try {
      await h.etcd.fragment({ targetDbBytes: 32 * MiB, liveFraction: 0.25 });
      const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
      const status = await runCli(["status", "--output", "json"], { env });
      const rows = (JSON.parse(status.stdout) as { members: { node: string; isLearner: boolean }[] }).members;
      assert.equal(rows.filter((x) => x.isLearner).length, 1, status.stderr);
      const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE, "--pause", "0s"], { env });
      assert.equal(r.code, 0, r.stderr);
      const s = summary(r.stdout);
      const learner = s.members.find((m) => m.node === h.learners[0]);
      assert.equal(learner?.action, "skipped");
      assert.match(learner.reason, /learner/);
      assert.equal(s.members.filter((m) => m.action === "defragmented").length, 3);
      assert.ok(
        !h.journal.some(
          (j) => j.via === "local" && j.method === "EtcdDefragment" && j.server === h.learners[0],
        ),
      );
    } finally {
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a single-member cluster is refused without --allow-downtime and defragmented with it", async () => {
    const h = await startHarness({ members: 1 });
    const dir = tempDir();
    try {
      await h.etcd.fragment({ targetDbBytes: 32 * MiB, liveFraction: 0.25 });
      const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
      const refused = await runCli(["run", "--output", "json", "--rule", TEST_RULE], { env });
      assert.equal(refused.code, 3, refused.stderr);
      assert.match(
        summary(refused.stdout).refusals[0]?.message ?? "",
        /only 1 voting member: .*--allow-downtime/,
      );
      assert.equal(h.journal.filter((j) => j.method === "EtcdDefragment").length, 0);
      const r = await runCli(["run", "--output", "json", "--rule", TEST_RULE, "--allow-downtime"], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(summary(r.stdout).members[0]?.action, "defragmented");
    } finally {
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("run: SIGTERM during a defrag", () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    h = await startHarness({ members: 3 });
    dir = tempDir();
    await h.etcd.fragment({ targetDbBytes: 96 * MiB, liveFraction: 0.5 });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lets the member in flight finish, starts nothing new, prints the summary, exit 1", async () => {
    const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    const since = nextSeq(h);
    const child = startCli(["run", "--output", "json", "--rule", TEST_RULE, "--pause", "0s"], { env });
    await waitFor("a defrag to start", () => h.activeDefrags().at(0), { timeoutMs: 60_000, intervalMs: 20 });
    child.process.kill("SIGTERM");
    const r = await child.done;
    assert.equal(r.code, 1, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "failed");
    const calls = defrags(h.journal, since);
    assert.equal(calls.length, 1, "nothing new started");
    assert.equal(calls[0]?.code, "OK", "the member in flight finished");
    assert.equal(s.members.filter((m) => m.action === "defragmented").length, 1);
    assert.equal(s.members.filter((m) => m.action === "not-reached").length, 2);
    assert.match(r.stderr, /stop requested/);
  });
});
