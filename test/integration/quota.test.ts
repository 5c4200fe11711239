// Each member's real quota and start-up defragment, read through the built CLI from the
// node's etcd spec (COSI State.Get, proxied by `node` metadata) on a harness whose etcd
// runs with --quota-bytes-backend: status shows it, the run's rule sees it, --quota-bytes
// overrides it, an unreadable spec falls back once, a spec that does not parse refuses.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Code } from "@connectrpc/connect";

import { runCli } from "../harness/run-cli.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { defrags, nextSeq, parseSummary as summary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";

const QUOTA = 64 * MiB;

interface Row {
  node: string;
  dbSize: number;
  quotaBytes?: number;
  quotaSource?: string;
  quotaUsage?: number;
  quotaError?: string;
  startupDefrag?: { configured: boolean; thresholdMegabytes?: number; flag?: string };
  protocolVersion?: string;
}

const NEW = "bootstrap-defrag-threshold-megabytes";
const EXP = "experimental-bootstrap-defrag-threshold-megabytes";

function parse(stdout: string): { members: Row[]; warnings: string[] } {
  return JSON.parse(stdout) as { members: Row[]; warnings: string[] };
}

/** A rule true exactly when the rule's quota is QUOTA and its usage is dbSize / QUOTA. */
const SEES_QUOTA = `dbQuota == ${QUOTA} && dbQuotaUsage == double(dbSize) / ${QUOTA}.0`;

const ETCD_SPEC_TYPE = "EtcdSpecs.etcd.talos.dev";
describe("the real quota, from each node's etcd spec", () => {
  let h: Harness;
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    h = await startHarness({ members: 3, quotaBackendBytes: QUOTA });
    dir = mkdtempSync(join(tmpdir(), "quota-test-"));
    env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
  });

  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("status shows each member's quota from its spec, read one-to-one by node metadata (JSON and table)", async () => {
    const since = nextSeq(h);
    const r = await runCli(["status", "--output", "json"], { env });
    assert.equal(r.code, 0, r.stderr);
    const { members, warnings } = parse(r.stdout);
    assert.deepEqual(warnings, []);
    for (const m of members) {
      assert.equal(m.quotaBytes, QUOTA);
      assert.equal(m.quotaSource, "spec");
      assert.equal(m.quotaUsage, Number((m.dbSize / QUOTA).toFixed(4)));
      assert.equal(m.startupDefrag?.configured, false);
    }
    const gets = h.journal.filter(
      (j) => j.seq >= since && j.method === "Get" && j.via === "local" && j.resource === ETCD_SPEC_TYPE,
    );
    assert.deepEqual(gets.map((g) => g.server).sort(), [...h.nodes].sort(), "each node served its own spec");

    const table = await runCli(["status"], { env });
    assert.equal(table.code, 0, table.stderr);
    const [header, ...rows] = table.stdout.trimEnd().split("\n");
    assert.match(header ?? "", /QUOTA\s+STARTUP DEFRAG/);
    assert.equal(rows.length, 3);
    for (const row of rows) assert.match(row, /64\.0 MiB \d+%\s+off/);
  });

  it("an os:reader certificate reads the spec too (Talos allows State.Get to os:reader)", async () => {
    const reader = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:reader"], dir }) };
    const r = await runCli(["status", "--output", "json"], { env: reader });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(parse(r.stdout).members.every((m) => m.quotaSource === "spec"));
  });

  it("the run's rule sees the quota of the spec (dbQuota, dbQuotaUsage)", async () => {
    const r = await runCli(["run", "--dry-run", "--output", "json", "--rule", SEES_QUOTA], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      summary(r.stdout).members.map((m) => m.action),
      ["would-defragment", "would-defragment", "would-defragment"],
    );
    assert.match(r.stderr, /etcd quota: .*64\.0 MiB \(quota-backend-bytes in its etcd spec\)/);
  });

  it("--quota-bytes overrides the spec's quota and says so", async () => {
    const since = nextSeq(h);
    const r = await runCli(
      ["run", "--dry-run", "--output", "json", "--rule", SEES_QUOTA, "--quota-bytes", "1GiB"],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      summary(r.stdout).members.map((m) => m.action),
      ["skipped", "skipped", "skipped"],
    );
    assert.match(
      r.stderr,
      /etcd quota: 1\.0 GiB for every member, from --quota-bytes \(overrides the quota configured on the nodes/,
    );
    assert.equal(
      h.journal.filter((j) => j.seq >= since && j.method === "Get" && j.resource === ETCD_SPEC_TYPE).length,
      0,
      "no etcd spec read",
    );
  });

  it("a spec that cannot be read falls back to etcd's 2 GiB with exactly one warning", async () => {
    for (const node of h.nodes.slice(0, 2))
      h.servers.get(node)!.failNext("Get", Code.PermissionDenied, "not authorized");
    const r = await runCli(["run", "--dry-run", "--output", "json", "--rule", "dbQuota == 2 * GiB"], { env });
    assert.equal(r.code, 0, r.stderr);
    const warnings = r.stderr.split("\n").filter((l) => /cannot read etcd's configuration/.test(l));
    assert.equal(warnings.length, 1, r.stderr);
    const [warning] = warnings;
    assert.match(warning ?? "", /\(State\.Get was denied/);
    const named = /configuration on (.*?) \(/.exec(warning ?? "")?.[1]?.split(", ");
    assert.deepEqual(named?.sort(), h.nodes.slice(0, 2).sort(), "both nodes named in the one warning");
    const byNode = new Map(summary(r.stdout).members.map((m) => [m.node, m.action]));
    assert.equal(byNode.get(h.nodes[0]!), "would-defragment", "2 GiB assumed");
    assert.equal(byNode.get(h.nodes[1]!), "would-defragment", "2 GiB assumed");
    assert.equal(byNode.get(h.nodes[2]!), "skipped", "its spec says 64 MiB");
  });

  it("a role that may not read the spec (os:etcd:backup) falls back in status with one warning", async () => {
    const backup = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:etcd:backup"], dir }) };
    const r = await runCli(["status", "--output", "json"], { env: backup });
    assert.equal(r.code, 0, r.stderr);
    const { members, warnings } = parse(r.stdout);
    assert.ok(members.every((m) => m.quotaBytes === 2 * 1024 * MiB && m.quotaSource === "fallback"));
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(
      warnings[0] ?? "",
      /cannot read etcd's configuration on .*: assuming etcd's default quota of 2\.0 GiB/,
    );
    assert.equal(r.stderr.split("\n").filter((l) => /cannot read etcd's configuration/.test(l)).length, 1);
  });

  it("a quota that does not parse in the spec: the member is named, exit 3, nothing defragmented", async () => {
    const bad = h.nodes[1]!;
    const server = h.servers.get(bad)!;
    const was = server.etcdExtraArgs;
    server.etcdExtraArgs = { "quota-backend-bytes": ["64MiB"] };
    try {
      const since = nextSeq(h);
      const r = await runCli(["run", "--output", "json", "--rule", "true"], { env });
      assert.equal(r.code, 3, r.stderr);
      const s = summary(r.stdout);
      assert.equal(s.result, "refused");
      assert.deepEqual(
        s.refusals.map((x) => [x.gate, x.node]),
        [["member-config", bad]],
      );
      assert.match(
        r.stderr,
        new RegExp(
          `quota-backend-bytes on ${bad.replace(/\./g, "\\.")} is "64MiB", which is not a byte count`,
        ),
      );
      assert.deepEqual(defrags(h.journal, since), [], "nothing defragmented");

      const st = await runCli(["status", "--output", "json"], { env });
      assert.equal(st.code, 0, st.stderr);
      const row = parse(st.stdout).members.find((m) => m.node === bad);
      assert.match(row?.quotaError ?? "", /"64MiB", which is not a byte count/);
    } finally {
      server.etcdExtraArgs = was;
    }
  });

  it("status reports the start-up defragment under the name the member's version understands, and warns about the other", async () => {
    // Written out here, independently of src/core: which spelling each etcd line takes (README, status).
    const version = parse((await runCli(["status", "--output", "json"], { env })).stdout).members[0]
      ?.protocolVersion;
    const minor = Number(/^3\.(\d+)\./.exec(version ?? "")?.[1]);
    const expected: Record<number, { good?: string; other: string; otherWorks: boolean; warning: RegExp }> = {
      4: { other: NEW, otherWorks: false, warning: /has no start-up defragment \(3\.5 added it\)/ },
      5: { good: EXP, other: NEW, otherWorks: false, warning: /does not accept it yet \(new in 3\.6/ },
      6: {
        good: NEW,
        other: EXP,
        otherWorks: true,
        warning: /is deprecated in etcd 3\.6\.\d+ and removed in 3\.7/,
      },
      7: { good: NEW, other: EXP, otherWorks: false, warning: /no longer accepts it \(removed in 3\.7/ },
    };
    const want = expected[minor];
    assert.ok(want, `etcd ${version} is in the table`);
    const [a, b] = h.nodes;
    const sa = h.servers.get(a!)!;
    const sb = h.servers.get(b!)!;
    const wasA = sa.etcdExtraArgs;
    const wasB = sb.etcdExtraArgs;
    if (want.good !== undefined) sa.etcdExtraArgs = { ...wasA, [want.good]: ["100"] };
    sb.etcdExtraArgs = { ...wasB, [want.other]: ["50"] };
    try {
      const r = await runCli(["status", "--output", "json"], { env });
      assert.equal(r.code, 0, r.stderr);
      const { members, warnings } = parse(r.stdout);
      const of = (n: string | undefined) => members.find((m) => m.node === n)?.startupDefrag;
      const named = want.good !== undefined ? { flag: want.good } : {};
      if (want.good !== undefined)
        assert.deepEqual(of(a), { configured: true, thresholdMegabytes: 100, ...named });
      assert.deepEqual(
        of(b),
        want.otherWorks
          ? { configured: true, thresholdMegabytes: 50, ...named }
          : { configured: false, ...named },
      );
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(
        warnings[0] ?? "",
        new RegExp(`^${b!.replace(/\./g, "\\.")}: etcd flag --${want.other}=50`),
      );
      assert.match(warnings[0] ?? "", want.warning);
      const table = await runCli(["status"], { env });
      if (want.good !== undefined) assert.match(table.stdout, /above 100\.0 MiB free/);
      assert.match(r.stderr, want.warning, "the warning is logged too");
    } finally {
      sa.etcdExtraArgs = wasA;
      sb.etcdExtraArgs = wasB;
    }
  });
});
