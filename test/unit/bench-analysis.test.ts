// The benchmark's own arithmetic: etcd's durations, overlapping windows, the targets.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

import { defragWindows } from "../../bench/etcd-log.js";
import { maxOverlap, targets, type Row } from "../../bench/report.js";

describe("bench: etcd's log", () => {
  it("finds each defragmentation's window in 3.6 and 3.4 logs, after a given time", () => {
    const dir = mkdtempSync(join(tmpdir(), "etcd-log-"));
    try {
      const file = join(dir, "etcd.log");
      writeFileSync(
        file,
        [
          '{"level":"info","ts":"2026-11-25T14:53:20.000000Z","msg":"finished defragmenting directory","took":"1s"}',
          '{"level":"info","ts":"2026-11-25T14:53:25.151219Z","msg":"defragmenting","path":"/db"}',
          '{"level":"info","ts":"2026-11-25T14:53:25.176408Z","msg":"finished defragmenting directory","took":"25.084034ms"}',
          '{"level":"info","ts":"2026-11-25T14:53:26.500Z","msg":"defragmented","took":"100ms"}',
          "",
        ].join("\n"),
      );
      const since = Date.parse("2026-11-25T14:53:21Z");
      const windows = defragWindows(file, 2, since);
      assert.equal(windows.length, 2);
      const end = Date.parse("2026-11-25T14:53:25.176Z") + 0.408;
      assert.ok(Math.abs((windows[0]?.end ?? 0) - end) < 1e-6);
      assert.ok(Math.abs((windows[0]?.start ?? 0) - (end - 25.084034)) < 1e-6);
      assert.equal(windows[1]?.member, 2);
      assert.equal(windows[1].end - windows[1].start, 100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("bench: analysis", () => {
  it("counts the most members blocked at one moment", () => {
    const w = (member: number, start: number, end: number) => ({ member, start, end });
    assert.equal(maxOverlap([]), 0);
    assert.equal(maxOverlap([w(0, 0, 10), w(1, 10, 20), w(2, 20, 30)]), 1, "back to back is not overlap");
    assert.equal(maxOverlap([w(0, 0, 10), w(1, 5, 20), w(2, 8, 30)]), 3);
    assert.equal(maxOverlap([w(0, 0, 10), w(1, 5, 20), w(2, 15, 30)]), 2);
  });

  it("checks the targets: met, not met, and not applicable outside the default preset", () => {
    const ours: Row = {
      tool: "talos-etcd-defrag",
      scenario: "normal",
      ran: true,
      wallMs: 10_000,
      defragSumMs: 9_700,
      overheadPct: 3,
      maxBlocked: 1,
      failedOps: 0,
      opsTotal: 100,
      reclaimedOfFreePct: 99.5,
      startToFirstRpcMs: 250,
      idleStartMs: 120,
      peakRssMb: 65,
    };
    const etcdctl: Row = {
      tool: "etcdctl",
      scenario: "normal",
      ran: true,
      overheadPct: 0.4,
      maxBlocked: 1,
      reclaimedOfFreePct: 100,
    };
    const met = (list: ReturnType<typeof targets>, re: RegExp) => list.find((t) => re.test(t.target))?.met;
    const d = targets([ours, etcdctl], "default");
    assert.equal(met(d, /one member blocked/), true);
    assert.equal(met(d, /overhead/), false);
    assert.match(
      d.find((t) => /overhead/.test(t.target))?.measured ?? "",
      /^Talos normal 3\.0% \(300 ms\).*etcdctl normal 0\.4%/,
    );
    assert.equal(met(d, /reclaims/), true);
    // The start-up target is on the idle machine: 120 ms is over it, 90 ms meets it; the number under
    // the load is printed beside it.
    assert.equal(met(d, /start to first call/), false);
    const idle = targets([{ ...ours, idleStartMs: 90 }, etcdctl], "default");
    assert.equal(met(idle, /start to first call/), true);
    assert.match(
      idle.find((t) => /start to first call/.test(t.target))?.measured ?? "",
      /^Talos normal 90 ms; under the benchmark's load 250 ms$/,
    );
    assert.equal(met(targets([{ ...ours, maxBlocked: 2 }, etcdctl], "default"), /one member blocked/), false);
    assert.equal(met(targets([{ ...ours, reclaimedOfFreePct: 90 }, etcdctl], "default"), /reclaims/), false);
    assert.equal(met(targets([ours, etcdctl], "quick"), /overhead/), "n/a");
    assert.equal(met(targets([ours], "quick"), /reclaims/), "n/a");
  });

  it("checks the targets on both of our backends, each row named, the peers once per scenario", () => {
    const row = (tool: Row["tool"], failedOps: number, idleStartMs: number): Row => ({
      tool,
      scenario: "normal",
      ran: true,
      wallMs: 10_000,
      defragSumMs: 9_900,
      overheadPct: 1,
      maxBlocked: 1,
      failedOps,
      opsTotal: 100,
      reclaimedOfFreePct: 100,
      startToFirstRpcMs: 250,
      idleStartMs,
      peakRssMb: 90,
    });
    const etcdctl: Row = {
      tool: "etcdctl",
      scenario: "normal",
      ran: true,
      overheadPct: 0.4,
      maxBlocked: 1,
      reclaimedOfFreePct: 100,
    };
    const list = targets(
      [row("talos-etcd-defrag", 0, 90), row("talos-etcd-defrag --backend etcd", 1, 95), etcdctl],
      "default",
    );
    const find = (re: RegExp) => list.find((t) => re.test(t.target));
    assert.equal(find(/no failed client operations/)?.met, false, "a failure on either backend counts");
    assert.equal(
      find(/no failed client operations/)?.measured,
      "Talos normal 0 of 100, etcd normal 1 of 100",
    );
    assert.equal(find(/overhead/)?.met, true);
    assert.match(
      find(/overhead/)?.measured ?? "",
      /; peers that kept one member at a time: etcdctl normal 0\.4%$/,
    );
    assert.equal(find(/start to first call/)?.met, true);
    assert.equal(
      find(/start to first call/)?.measured,
      "Talos normal 90 ms, etcd normal 95 ms; under the benchmark's load 250 ms, 250 ms",
    );
    // Only the etcd backend ran: its targets alone.
    const alone = targets([row("talos-etcd-defrag --backend etcd", 0, 120)], "quick");
    assert.equal(alone.find((t) => /one member blocked/.test(t.target))?.measured, "etcd normal 1");
  });
});
