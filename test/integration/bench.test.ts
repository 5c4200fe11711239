// A smoke run of the benchmark: it works end to end and writes its outputs
// (it asserts the bench works and our never-two-at-once property, not timings).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

import type { Row, Target } from "../../bench/report.js";
import { REPO_ROOT } from "../harness/run-cli.js";

describe("benchmark (smoke preset)", () => {
  const out = mkdtempSync(join(tmpdir(), "bench-smoke-"));
  after(() => {
    rmSync(out, { recursive: true, force: true });
  });

  it("measures our tool (both backends) and etcdctl in both scenarios, prints the table, writes JSON and SVGs", () => {
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        join(REPO_ROOT, "bench", "bench.ts"),
        "--preset",
        "smoke",
        "--tools",
        "talos-etcd-defrag,talos-etcd-defrag --backend etcd,etcdctl,etcd-defrag",
        "--out",
        out,
      ],
      { encoding: "utf8", cwd: REPO_ROOT, env: { ...process.env, ETCD_DEFRAG_BIN: "" }, timeout: 300_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\| tool \| scenario \| wall s \|/m);
    assert.match(r.stdout, /\| etcd-defrag \| normal \| not run \(no binary\) \|/);
    const report = JSON.parse(readFileSync(join(out, "results-smoke.json"), "utf8")) as {
      rows: Row[];
      machine: string;
      targets: Target[];
    };
    assert.ok(report.machine.length > 0);
    const ours = report.rows.filter((x) => x.tool.startsWith("talos-etcd-defrag"));
    assert.deepEqual(
      ours.map((x) => `${x.tool} ${x.scenario}`),
      [
        "talos-etcd-defrag normal",
        "talos-etcd-defrag --backend etcd normal",
        "talos-etcd-defrag short-timeout",
        "talos-etcd-defrag --backend etcd short-timeout",
      ],
    );
    for (const row of ours) {
      const name = `${row.tool} ${row.scenario}`;
      assert.equal(row.ran, true, name);
      assert.equal(row.exitCode, 0, `${name}: ${row.note}`);
      assert.equal(row.maxBlocked, 1, `${name}: never two members at once`);
      assert.ok((row.reclaimedBytes ?? 0) > 0, name);
      assert.ok((row.opsTotal ?? 0) > 0, name);
      assert.ok(
        (row.startToFirstRpcMs ?? -1) > 0 && (row.idleStartMs ?? -1) > 0 && (row.peakRssMb ?? 0) > 0,
        name,
      );
      // The phases of the time outside the defrags add up to it (wall minus etcd's defrag sum).
      const o = row.overhead;
      assert.ok(o !== undefined, name);
      assert.equal(o.source, row.tool === "talos-etcd-defrag" ? "journal" : "etcd log", name);
      if (o.source === "etcd log")
        assert.ok(
          Math.abs(o.startMs + o.beforeFirstMs + o.betweenMs + o.afterMs + o.defragMs - (row.wallMs ?? 0)) <
            1,
          `${name}: the phases and the defrags make the wall time`,
        );
      if (row.tool === "talos-etcd-defrag")
        assert.equal(row.failedOps, 0, `${name}: ${JSON.stringify(row.failedOpErrors)}`);
      // With --backend etcd the leader's leadership is moved (MoveLeader) before its defragment: raft
      // drops proposals during the transfer, so a put that arrives then may fail (at once on the old
      // leader, after etcd's 7 s request timeout through a follower). Nothing else may fail.
      else
        for (const error of Object.keys(row.failedOpErrors ?? {}))
          assert.match(error, /^put: .*(request timed out|proposal dropped|leader changed)/, name);
    }
    // The targets are checked and printed; the timing ones are not asserted on a smoke run.
    assert.match(r.stdout, /^Targets for talos-etcd-defrag \(both backends\):$/m);
    const target = (name: RegExp): Target | undefined => report.targets.find((t) => name.test(t.target));
    assert.equal(target(/one member blocked/)?.met, true);
    assert.match(target(/one member blocked/)?.measured ?? "", /^Talos normal 1, etcd normal 1, /);
    assert.equal(
      target(/no failed client operations/)?.met,
      ours.every((x) => x.failedOps === 0),
    );
    assert.equal(target(/overhead/)?.met, "n/a", "the overhead target is for the default preset");
    assert.match(r.stdout, /^Where our overhead goes/m);
    assert.match(r.stdout, /^\| talos-etcd-defrag --backend etcd \| short-timeout \| \d+ \| \d+ \|/m);
    const etcdctl = report.rows.filter((x) => x.tool === "etcdctl");
    assert.ok(etcdctl.every((x) => x.ran && (x.reclaimedBytes ?? 0) > 0));
    for (const file of [
      "normal-talos-etcd-defrag.svg",
      "short-timeout-talos-etcd-defrag-backend-etcd.svg",
      "short-timeout-etcdctl.svg",
    ]) {
      assert.ok(existsSync(join(out, file)), file);
      assert.match(
        readFileSync(join(out, file), "utf8"),
        /^<svg [^>]+>[\s\S]*<rect [^>]*fill="#f4a261"[\s\S]*<\/svg>\n$/,
      );
    }
  });
});
