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

  it("measures our tool and etcdctl in both scenarios, prints the table, writes JSON and SVGs", () => {
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        join(REPO_ROOT, "bench", "bench.ts"),
        "--preset",
        "smoke",
        "--tools",
        "talos-etcd-defrag,etcdctl,etcd-defrag",
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
    const ours = report.rows.filter((x) => x.tool === "talos-etcd-defrag");
    assert.equal(ours.length, 2);
    for (const row of ours) {
      assert.equal(row.ran, true);
      assert.equal(row.exitCode, 0, row.note);
      assert.equal(row.maxBlocked, 1, `${row.scenario}: never two members at once`);
      assert.ok((row.reclaimedBytes ?? 0) > 0);
      assert.ok((row.opsTotal ?? 0) > 0 && row.failedOps === 0);
      assert.ok((row.startToFirstRpcMs ?? -1) > 0 && (row.idleStartMs ?? -1) > 0 && (row.peakRssMb ?? 0) > 0);
    }
    // The targets are checked and printed; the timing ones are not asserted on a smoke run.
    assert.match(r.stdout, /^Targets for talos-etcd-defrag:$/m);
    const target = (name: RegExp): Target | undefined => report.targets.find((t) => name.test(t.target));
    assert.equal(target(/one member blocked/)?.met, true);
    assert.equal(target(/no failed client operations/)?.met, true);
    assert.equal(target(/overhead/)?.met, "n/a", "the overhead target is for the default preset");
    assert.match(r.stdout, /^Where our overhead goes/m);
    const etcdctl = report.rows.filter((x) => x.tool === "etcdctl");
    assert.ok(etcdctl.every((x) => x.ran && (x.reclaimedBytes ?? 0) > 0));
    for (const file of ["normal-talos-etcd-defrag.svg", "short-timeout-etcdctl.svg"]) {
      assert.ok(existsSync(join(out, file)), file);
      assert.match(
        readFileSync(join(out, file), "utf8"),
        /^<svg [^>]+>[\s\S]*<rect [^>]*fill="#f4a261"[\s\S]*<\/svg>\n$/,
      );
    }
  });
});
