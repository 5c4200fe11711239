// Metrics through a real Pushgateway and the text file, after successful,
// refused and unpublishable runs.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { startHarness, type Harness } from "../harness/harness.js";
import { PushgatewayProcess, parseMetrics, sample } from "../harness/pushgateway.js";
import { runCli } from "../harness/run-cli.js";
import { TEST_RULE, parseSummary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";

describe("metrics", () => {
  let h: Harness;
  let pg: PushgatewayProcess;
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    h = await startHarness({ members: 3 });
    // The Pushgateway on the first node's address: that block is this test file's alone.
    pg = await PushgatewayProcess.start(h.nodes[0]!, 9091);
    dir = mkdtempSync(join(tmpdir(), "metrics-test-"));
    env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir, context: "prod-cluster" }) };
  });

  after(async () => {
    await pg.stop();
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a successful run pushes its result, timestamps and per-member sizes; the file has the same values", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    const file = join(dir, "etcd-defrag.prom");
    const startedAt = Date.now() / 1000;
    const r = await runCli(
      [
        "run",
        "--output",
        "json",
        "--rule",
        TEST_RULE,
        "--pause",
        "0s",
        "--pushgateway-url",
        pg.url,
        "--metrics-file",
        file,
      ],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    const s = parseSummary(r.stdout);
    const group = { job: "etcd-defrag", cluster: "prod-cluster" };
    const pushed = await pg.scrape();
    assert.equal(sample(pushed, "etcd_defrag_run_result", { ...group, result: "success" }), 1);
    assert.equal(sample(pushed, "etcd_defrag_run_result", { ...group, result: "failed" }), 0);
    assert.equal(sample(pushed, "etcd_defrag_run_exit_code", group), 0);
    const reclaimed = s.members.reduce((sum, m) => sum + (m.before?.dbSize ?? 0) - (m.after?.dbSize ?? 0), 0);
    assert.equal(sample(pushed, "etcd_defrag_reclaimed_bytes", group), reclaimed);
    assert.equal(s.reclaimedBytes, reclaimed);
    const lastRun = sample(pushed, "etcd_defrag_last_run_timestamp_seconds", group) ?? 0;
    assert.ok(lastRun >= startedAt && lastRun <= Date.now() / 1000 + 1);
    assert.equal(sample(pushed, "etcd_defrag_last_success_timestamp_seconds", group), lastRun);
    for (const m of s.members) {
      const l = { ...group, node: m.node, member: m.memberId };
      assert.equal(sample(pushed, "etcd_defrag_member_action", { ...l, action: "defragmented" }), 1);
      // The harness sets no quota-backend-bytes: etcd's default, as read from each node's etcd spec.
      assert.equal(sample(pushed, "etcd_defrag_member_quota_bytes", l), 2 * 1024 ** 3);
      assert.equal(m.quotaBytes, 2 * 1024 ** 3);
      assert.equal(
        sample(pushed, "etcd_defrag_member_db_size_bytes", { ...l, phase: "before" }),
        m.before?.dbSize,
      );
      assert.equal(
        sample(pushed, "etcd_defrag_member_db_size_bytes", { ...l, phase: "after" }),
        m.after?.dbSize,
      );
      assert.equal(
        sample(pushed, "etcd_defrag_member_reclaimed_bytes", l),
        (m.before?.dbSize ?? 0) - (m.after?.dbSize ?? 0),
      );
      assert.ok((sample(pushed, "etcd_defrag_member_defrag_duration_seconds", l) ?? -1) >= 0);
      // etcd's own blocked time, from its log: the same number as the summary's.
      assert.ok(m.blockedMs !== null && m.blockedMs > 0, `${m.node}: blockedMs`);
      assert.ok(
        Math.abs((sample(pushed, "etcd_defrag_member_blocked_seconds", l) ?? -1) - m.blockedMs / 1000) <
          0.002,
      );
    }
    // Always pushed, 0 when none, so that a later push replaces an earlier alarm.
    assert.equal(sample(pushed, "etcd_defrag_alarm_raised", { ...group, alarm: "NOSPACE" }), 0);
    assert.equal(sample(pushed, "etcd_defrag_alarm_raised", { ...group, alarm: "CORRUPT" }), 0);

    const text = readFileSync(file, "utf8");
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
    const local = parseMetrics(text);
    for (const name of [
      "etcd_defrag_reclaimed_bytes",
      "etcd_defrag_last_run_timestamp_seconds",
      "etcd_defrag_run_exit_code",
    ]) {
      assert.equal(sample(local, name, group), sample(pushed, name, group), name);
    }
    assert.equal(sample(local, "etcd_defrag_run_result", { ...group, result: "success" }), 1);
  });

  it("a refused run pushes its result and keeps the last success", async () => {
    const before = await pg.scrape();
    const group = { job: "etcd-defrag", cluster: "prod-cluster" };
    const lastSuccess = sample(before, "etcd_defrag_last_success_timestamp_seconds", group);
    assert.ok(lastSuccess !== undefined);
    await h.etcd.stop(2);
    try {
      const r = await runCli(["run", "--rule", TEST_RULE, "--pushgateway-url", pg.url], { env });
      assert.equal(r.code, 3, r.stderr);
    } finally {
      await h.etcd.restart(2);
      await h.etcd.waitHealthy();
    }
    const after = await pg.scrape();
    assert.equal(sample(after, "etcd_defrag_run_result", { ...group, result: "refused" }), 1);
    assert.equal(sample(after, "etcd_defrag_run_result", { ...group, result: "success" }), 0);
    assert.equal(sample(after, "etcd_defrag_run_exit_code", group), 3);
    // The gate that refused it (a member down: reachable), every other gate 0.
    assert.equal(sample(after, "etcd_defrag_run_refused", { ...group, gate: "reachable" }), 1);
    assert.equal(sample(after, "etcd_defrag_run_refused", { ...group, gate: "lifecycle" }), 0);
    assert.equal(
      sample(after, "etcd_defrag_last_success_timestamp_seconds", group),
      lastSuccess,
      "unchanged",
    );
    assert.ok((sample(after, "etcd_defrag_last_run_timestamp_seconds", group) ?? 0) > lastSuccess);
  });

  it("a Pushgateway that is down: the run still succeeds, exit 0, one warning", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    const down = `http://${h.nodes[1]!}:9091`;
    const r = await runCli(["run", "--rule", TEST_RULE, "--pause", "0s", "--pushgateway-url", down], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^result: success/);
    const warnings = r.stderr.split("\n").filter((l) => / WARN /.test(l));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0]!, new RegExp(`could not push metrics to ${down.replace(/\./g, "\\.")}`));
  });

  it("a --pushgateway-url that is not a URL is a usage error before any call", async () => {
    const before = h.journal.length;
    const r = await runCli(["run", "--pushgateway-url", "pushgateway:9091"], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--pushgateway-url "pushgateway:9091" is not an http\(s\) URL/);
    assert.equal(h.journal.length, before);
  });
});
