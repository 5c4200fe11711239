// The version gate on real etcd: members on an etcd with the snapshot/defragment bug
// (3.6.4: Talos 1.11.0-1.11.2; 3.5.22: before 3.5.23) are named in a warning by `status`
// and `run`, defragmented only after a fresh reading shows them fully caught up with the
// leader, and refused with --affected-etcd refuse; on a fixed etcd (3.6.16) nothing of it.
// The binaries come from scripts/etcd.sh (built once from the Go module proxy, cached).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { REPO_ROOT, runCli } from "../harness/run-cli.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { defrags, nextSeq, parseSummary } from "../harness/run-summary.js";

function etcdBinary(version: string): string {
  return execFileSync("bash", [join(REPO_ROOT, "scripts", "etcd.sh"), version], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

interface StatusRow {
  node: string;
  name: string;
  isLeader: boolean;
  etcdVersion: string;
  etcdVersionStatus: string;
}

function logs(stderr: string): { level: string; msg: string; node?: string }[] {
  return stderr
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { level: string; msg: string; node?: string });
}

function cluster(version: string, expect: { affected: boolean; fixedIn?: string; talos?: string }): void {
  describe(`etcd ${version}`, () => {
    let h: Harness;
    let dir: string;
    let env: Record<string, string>;
    const plain = version.replace(/^v/, "");

    before(async () => {
      h = await startHarness({ members: 3, etcdBin: etcdBinary(version) });
      dir = mkdtempSync(join(tmpdir(), "etcd-versions-test-"));
      env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
    });

    after(async () => {
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("status shows each member's version (table and JSON), with a warning when it is affected", async () => {
      const json = await runCli(["status", "--output", "json", "--log-format", "json"], { env });
      assert.equal(json.code, 0, json.stderr);
      const rows = (JSON.parse(json.stdout) as { members: StatusRow[] }).members;
      assert.equal(rows.length, 3);
      for (const row of rows) {
        assert.equal(row.etcdVersion, plain);
        assert.equal(row.etcdVersionStatus, expect.affected ? "affected" : "fixed");
      }
      const warnings = logs(json.stderr).filter((l) => l.level === "warn");
      if (expect.affected) {
        assert.equal(warnings.length, 3, json.stderr);
        for (const row of rows)
          assert.ok(
            warnings.some(
              (w) =>
                w.node === row.node &&
                w.msg.includes(`${row.name} (`) &&
                w.msg.includes(`runs etcd ${plain}, which can corrupt its data when a raft snapshot`) &&
                w.msg.includes(`fixed in etcd ${expect.fixedIn ?? ""}, shipped by ${expect.talos ?? ""}`),
            ),
            `${row.node}: ${json.stderr}`,
          );
      } else {
        assert.deepEqual(warnings, []);
      }
      const table = await runCli(["status"], { env });
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trimEnd().split("\n");
      assert.match(lines[0] ?? "", /\sETCD\s/);
      for (const line of lines.slice(1))
        assert.ok(line.includes(expect.affected ? `${plain} (affected)` : ` ${plain} `), line);
    });

    if (expect.affected) {
      it("--affected-etcd refuse: exit 3 naming every member, nothing defragmented", async () => {
        const since = nextSeq(h);
        const r = await runCli(["run", "--output", "json", "--rule", "true", "--affected-etcd", "refuse"], {
          env,
        });
        assert.equal(r.code, 3, r.stderr);
        const s = parseSummary(r.stdout);
        assert.equal(s.result, "refused");
        assert.deepEqual(
          s.refusals.map((f) => f.gate),
          ["etcd-version", "etcd-version", "etcd-version"],
        );
        for (const f of s.refusals)
          assert.match(
            f.message,
            new RegExp(`runs etcd ${plain.replaceAll(".", "\\.")}, .*refused \\(--affected-etcd refuse\\)$`),
          );
        assert.deepEqual(defrags(h.journal, since), []);
      });
    }

    it(
      expect.affected
        ? "run: warns, then defragments each follower only after reading it fully caught up with the leader"
        : "run: no warning, no caught-up wait",
      async () => {
        const since = nextSeq(h);
        const r = await runCli(
          ["run", "--output", "json", "--log-format", "json", "--rule", "true", "--pause", "100ms"],
          {
            env,
          },
        );
        assert.equal(r.code, 0, r.stderr);
        const s = parseSummary(r.stdout);
        assert.equal(s.result, "success");
        assert.equal(defrags(h.journal, since).length, 3);
        const entries = logs(r.stderr);
        const warnings = entries.filter((l) => l.level === "warn" && /raft snapshot/.test(l.msg));
        const caughtUp = entries.filter((l) =>
          /is fully caught up with the leader \(applied index \d+\), so defragmenting it now$/.test(l.msg),
        );
        if (expect.affected) {
          assert.equal(warnings.length, 3, r.stderr);
          for (const w of warnings)
            assert.match(w.msg, /it is defragmented only while fully caught up with the leader/);
          // Every member (the leader is trivially caught up with itself), each just before its defragment.
          assert.deepEqual(caughtUp.map((l) => l.node).sort(), s.members.map((m) => m.node).sort());
          for (const m of s.members)
            assert.ok(
              m.notes.some((n) =>
                n.includes(
                  `etcd ${plain} is affected by the snapshot/defragment bug: defragmented while fully caught up`,
                ),
              ),
              JSON.stringify(m),
            );
        } else {
          assert.deepEqual(warnings, []);
          assert.deepEqual(caughtUp, []);
        }
      },
    );
  });
}

describe("the etcd version gate on real etcd", () => {
  cluster("v3.6.4", { affected: true, fixedIn: "3.6.5", talos: "Talos 1.11.3 and later (etcd 3.6.5+)" });
  cluster("v3.5.22", { affected: true, fixedIn: "3.5.23", talos: "Talos 1.10.9 and later (etcd 3.5.26)" });
  cluster("v3.6.16", { affected: false });
});
